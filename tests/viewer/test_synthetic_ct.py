"""The synthetic CT is valid DICOM with exact geometry."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from viewer.services.synthetic_ct import demo_patients


@pytest.mark.dicomtools
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) is not installed")
def test_dciodvfy_finds_no_errors_in_the_synthetic_ct(small_ct_files):
    for path in small_ct_files.files[:3]:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        assert "Error" not in output, output
        assert "CTImage" in output


def test_slices_are_evenly_spaced_along_the_normal(small_ct_files):
    positions = [
        float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in small_ct_files.files
    ]
    steps = {round(b - a, 6) for a, b in zip(positions, positions[1:], strict=False)}
    assert steps == {2.5}


def test_demo_patients_have_one_to_three_lesions_of_known_size_on_a_slice():
    for patient in demo_patients(count=5):
        assert 1 <= len(patient.lesions) <= 3
        assert 60 <= patient.slices <= 120
        slice_z = [-(patient.slices - 1) * 2.5 / 2.0 + k * 2.5 for k in range(patient.slices)]
        for lesion in patient.lesions:
            assert lesion.center_mm[2] in slice_z
            assert lesion.long_axis_mm >= lesion.short_axis_mm > 0


def test_tissue_at_names_the_tissue_the_image_paints_there():
    from viewer.services.synthetic_ct import SyntheticPatient, tissue_at, volume_hu

    # No lesions, so every voxel shows the body's own tissue.
    patient = SyntheticPatient("RB-TISSUE", "Tissue^Test", lesions=[], rows=96, columns=96, slices=12, seed=3)
    volume, (x0, y0), zs = volume_hu(patient)
    hu_of = {"air": -1000, "lung": -850, "fat": -100, "soft_tissue": 40, "liver": 110, "bone": 700}
    rng = np.random.default_rng(0)
    for _ in range(300):
        k, row, column = int(rng.integers(0, 12)), int(rng.integers(0, 96)), int(rng.integers(0, 96))
        point = (x0 + column * patient.pixel_spacing_mm, y0 + row * patient.pixel_spacing_mm, zs[k])

        # Image noise is 8 HU (sd); the tissues are hundreds of HU apart, except soft tissue and liver (70).
        assert abs(int(volume[k, row, column]) - hu_of[tissue_at(patient, point)]) < 33, point


def test_the_demo_lesions_sit_in_lung_and_liver():
    from viewer.services.synthetic_ct import tissue_at

    tissues = {tissue_at(patient, lesion.center_mm) for patient in demo_patients() for lesion in patient.lesions}

    assert tissues == {"lung", "liver"}


def test_a_small_demo_matrix_keeps_every_lesion_inside_the_image():
    for patient in demo_patients(count=4, slices=30, rows=128, columns=128):
        half_fov_mm = patient.rows * patient.pixel_spacing_mm / 2
        for lesion in patient.lesions:
            x, y, _ = lesion.center_mm
            assert max(abs(x), abs(y)) + lesion.diameters_mm[0] / 2 < half_fov_mm
