"""Image-to-patient geometry of read marks, checked against the synthetic CT's known layout and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.core.geometry import FrameGeometry, frames_of_instance, line_length_mm, series_geometry


class FakeInstance:
    def __init__(self, uid, z, *, orientation=(1, 0, 0, 0, 1, 0), spacing=(0.5, 0.8), frames=1, positions=None):
        self.sop_instance_uid = uid
        self.rows, self.columns, self.number_of_frames = 10, 12, frames
        self.pixel_spacing_mm = list(spacing)
        self.slice_thickness_mm = 2.0
        self.spacing_between_slices_mm = None
        self.image_position_patient = [-5.0, -3.0, z]
        self.image_orientation_patient = list(orientation)
        self.frame_positions_patient = positions


def test_image_point_maps_to_patient_position_with_row_and_column_spacing_in_dicom_order():
    (frame,) = frames_of_instance(FakeInstance("1.2", 7.5))

    point = frame.to_patient_mm(2.0, 4.0)

    # Column steps use the column spacing (0.8), rows the row spacing (0.5).
    np.testing.assert_allclose(point, [-5.0 + 2 * 0.8, -3.0 + 4 * 0.5, 7.5])


def test_oblique_orientation_follows_the_direction_cosines():
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    (frame,) = frames_of_instance(FakeInstance("1.3", 0.0, orientation=(c, s, 0, 0, 0, -1), spacing=(1, 1)))

    np.testing.assert_allclose(frame.to_patient_mm(3.0, 2.0), [-5 + 3 * c, -3 + 3 * s, -2.0])


def test_length_uses_anisotropic_spacing():
    assert line_length_mm(start=(0, 0), end=(3, 4), pixel_spacing_mm=(2.0, 1.0)) == pytest.approx(np.hypot(3, 8))


def test_series_geometry_sorts_slices_along_the_normal_and_measures_their_spacing():
    instances = [FakeInstance(f"1.{k}", z) for k, z in enumerate([5.0, 0.0, 2.5, 7.5])]

    geometry = series_geometry(instances)

    assert [f.sop_instance_uid for f in geometry.frames] == ["1.1", "1.2", "1.0", "1.3"]
    assert geometry.slice_spacing_mm == pytest.approx(2.5)
    assert geometry.shape == (4, 10, 12)
    assert geometry.slice_index("1.0") == 2


def test_multiframe_instance_frames_use_their_per_frame_positions():
    positions = [[0, 0, 0], [0, 0, 3.0], [0, 0, 6.0]]
    frames = frames_of_instance(FakeInstance("1.9", 0.0, frames=3, positions=positions))

    assert [f.position_mm[2] for f in frames] == [0.0, 3.0, 6.0]
    assert series_geometry([FakeInstance("1.9", 0.0, frames=3, positions=positions)]).slice_spacing_mm == 3.0


def test_imported_synthetic_ct_places_the_lesion_centre_where_it_was_drawn(small_ct_series):
    geometry = series_geometry(small_ct_series.instances.all())
    middle: FrameGeometry = geometry.frames[4]

    np.testing.assert_allclose(middle.to_patient_mm(23.5, 37.5), [-8.0, 6.0, 0.0], atol=1e-6)
    assert geometry.slice_spacing_mm == pytest.approx(2.5)
