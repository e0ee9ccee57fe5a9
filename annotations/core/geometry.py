"""Image-to-patient geometry for read marks: frames, line end points in mm, lengths and slice spacing.

It turns a drawn line's (column, row) end points on one frame into DICOM patient
coordinates following the image plane module (docs/read-format.md), so marks drawn
on different slices of a series can be compared in millimetres. It is pure: it takes
plain values or any object with an Instance's geometry attributes, never queries the
database and never reads pixel data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Used when a series carries no usable spacing at all (e.g. a single slice).
FALLBACK_SLICE_SPACING_MM = 1.0


class InstanceGeometry(Protocol):
    """What an Instance row (or any stand-in) must offer to place its frames in space."""

    sop_instance_uid: str
    rows: int
    columns: int
    number_of_frames: int
    pixel_spacing_mm: list[float] | None
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    image_position_patient: list[float] | None
    image_orientation_patient: list[float] | None
    frame_positions_patient: list[list[float]] | None


@dataclass(frozen=True)
class FrameGeometry:
    """Where one frame lies in patient space.

    `row_cosine` is the direction of increasing column index (DICOM's first
    orientation triplet), `column_cosine` that of increasing row index.
    `pixel_spacing_mm` is (row spacing, column spacing) in DICOM's order.
    """

    sop_instance_uid: str
    frame: int
    rows: int
    columns: int
    position_mm: tuple[float, float, float]
    row_cosine: tuple[float, float, float]
    column_cosine: tuple[float, float, float]
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.sop_instance_uid, self.frame)

    @property
    def normal(self) -> tuple[float, float, float]:
        return _cross(self.row_cosine, self.column_cosine)

    def to_patient_mm(self, column: float, row: float) -> np.ndarray:
        """Return the patient position (mm) of image point (column, row); (0, 0) is the top-left pixel centre."""
        row_spacing, column_spacing = self.pixel_spacing_mm
        return (
            np.asarray(self.position_mm, dtype=float)
            + column * column_spacing * np.asarray(self.row_cosine, dtype=float)
            + row * row_spacing * np.asarray(self.column_cosine, dtype=float)
        )

    def to_image(self, point_mm: Sequence[float]) -> tuple[float, float, float]:
        """Return (column, row, distance from the frame's plane in mm) of a patient point; inverse of to_patient_mm."""
        row_spacing, column_spacing = self.pixel_spacing_mm
        offset = np.asarray(point_mm, dtype=float) - np.asarray(self.position_mm, dtype=float)
        column = float(offset @ np.asarray(self.row_cosine, dtype=float)) / column_spacing
        row = float(offset @ np.asarray(self.column_cosine, dtype=float)) / row_spacing
        return column, row, abs(float(offset @ np.asarray(self.normal, dtype=float)))

    def line_length_mm(self, start: Sequence[float], end: Sequence[float]) -> float:
        """Return the in-plane length (mm) of a line given as (column, row) end points."""
        return line_length_mm(start=start, end=end, pixel_spacing_mm=self.pixel_spacing_mm)


def line_length_mm(*, start: Sequence[float], end: Sequence[float], pixel_spacing_mm: Sequence[float]) -> float:
    """Return sqrt((Δc·dc)² + (Δr·dr)²) for (column, row) end points and (row, column) spacing in mm."""
    row_spacing, column_spacing = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    dc = float(end[0]) - float(start[0])
    dr = float(end[1]) - float(start[1])
    return math.hypot(column_spacing * dc, row_spacing * dr)


def _cross(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    # Plain Python: numpy's cross costs more than the arithmetic for one pair of 3-vectors.
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _triplet(values, name: str, uid: str) -> tuple[float, float, float]:
    if values is None or len(values) != 3:
        raise ValueError(f"{name} of instance {uid} must have 3 values, got {values!r}")
    return (float(values[0]), float(values[1]), float(values[2]))


def frames_of_instance(instance: InstanceGeometry) -> list[FrameGeometry]:
    """Return the geometry of every frame of an instance (1-based frames).

    Instances without position or orientation (e.g. secondary captures) are laid
    out as identity-oriented frames at the origin with 1 mm pixels, so lines on
    them still have a length; they just never match lines on other instances.
    """
    uid = instance.sop_instance_uid
    orientation = instance.image_orientation_patient
    if orientation is not None and len(orientation) == 6:
        row_cosine = _triplet(orientation[:3], "ImageOrientationPatient", uid)
        column_cosine = _triplet(orientation[3:], "ImageOrientationPatient", uid)
    else:
        row_cosine, column_cosine = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    spacing = instance.pixel_spacing_mm
    if spacing is not None and len(spacing) == 2 and all(float(s) > 0 for s in spacing):
        pixel_spacing = (float(spacing[0]), float(spacing[1]))
    else:
        pixel_spacing = (1.0, 1.0)
    n_frames = max(1, int(instance.number_of_frames or 1))
    per_frame = instance.frame_positions_patient or []
    base = instance.image_position_patient
    normal = np.asarray(_cross(row_cosine, column_cosine))
    step = float(instance.spacing_between_slices_mm or instance.slice_thickness_mm or 0.0)
    frames = []
    for frame in range(1, n_frames + 1):
        if len(per_frame) >= frame and per_frame[frame - 1] is not None:
            position = _triplet(per_frame[frame - 1], "frame position", uid)
        elif base is not None and len(base) == 3:
            # A multi-frame instance without per-frame positions stacks frames along the normal.
            origin = np.asarray(_triplet(base, "ImagePositionPatient", uid))
            position = tuple(float(v) for v in origin + (frame - 1) * step * normal)
        else:
            position = (0.0, 0.0, 0.0)
        frames.append(
            FrameGeometry(
                sop_instance_uid=uid,
                frame=frame,
                rows=int(instance.rows),
                columns=int(instance.columns),
                position_mm=position,
                row_cosine=row_cosine,
                column_cosine=column_cosine,
                pixel_spacing_mm=pixel_spacing,
                slice_thickness_mm=instance.slice_thickness_mm,
            )
        )
    return frames


@dataclass
class SeriesGeometry:
    """The frames of one series in anatomical order, with a voxel grid for masks.

    Frames are sorted by their position along the slice normal, so index k of
    `frames` is slice k of the mask volume (shape: slices x rows x columns).
    Frames whose size differs from the most common one are left out of the grid.
    """

    frames: list[FrameGeometry]
    slice_spacing_mm: float
    shape: tuple[int, int, int]
    _index: dict[tuple[str, int], int]

    def slice_index(self, sop_instance_uid: str, frame: int = 1) -> int | None:
        """Return the slice index of a frame in the volume, or None when it is not part of the grid."""
        return self._index.get((sop_instance_uid, int(frame)))

    def frame(self, sop_instance_uid: str, frame: int = 1) -> FrameGeometry | None:
        index = self.slice_index(sop_instance_uid, frame)
        return None if index is None else self.frames[index]

    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Return (slice, row, column) voxel size in mm."""
        row_spacing, column_spacing = self.frames[0].pixel_spacing_mm if self.frames else (1.0, 1.0)
        return (self.slice_spacing_mm, row_spacing, column_spacing)

    @property
    def n_voxels(self) -> int:
        return int(self.shape[0]) * int(self.shape[1]) * int(self.shape[2])


def series_geometry(instances: Iterable[InstanceGeometry]) -> SeriesGeometry:
    """Return the series' frames sorted along the slice normal and the spacing between neighbouring slices."""
    return series_geometry_from_frames([frame for instance in instances for frame in frames_of_instance(instance)])


def series_geometry_from_frames(all_frames: list[FrameGeometry]) -> SeriesGeometry:
    """Return the series geometry of frames already placed by `frames_of_instance`."""
    if not all_frames:
        return SeriesGeometry(frames=[], slice_spacing_mm=FALLBACK_SLICE_SPACING_MM, shape=(0, 0, 0), _index={})
    sizes: dict[tuple[int, int], int] = {}
    for frame in all_frames:
        sizes[(frame.rows, frame.columns)] = sizes.get((frame.rows, frame.columns), 0) + 1
    rows, columns = max(sizes, key=lambda size: (sizes[size], size))
    frames = [frame for frame in all_frames if (frame.rows, frame.columns) == (rows, columns)]
    normal = frames[0].normal

    # Sort on position along the normal; the UID and frame break ties so the order is reproducible.
    def along_normal(f: FrameGeometry) -> float:
        return sum(n * p for n, p in zip(normal, f.position_mm, strict=True))

    frames.sort(key=lambda f: (along_normal(f), f.sop_instance_uid, f.frame))
    positions = np.array([along_normal(f) for f in frames])
    gaps = np.diff(positions)
    gaps = gaps[gaps > 1e-6]
    if gaps.size:
        spacing = float(np.median(gaps))
    else:
        thickness = [f.slice_thickness_mm for f in frames if f.slice_thickness_mm]
        spacing = float(thickness[0]) if thickness else FALLBACK_SLICE_SPACING_MM
    index = {frame.key: k for k, frame in enumerate(frames)}
    return SeriesGeometry(frames=frames, slice_spacing_mm=spacing, shape=(len(frames), rows, columns), _index=index)
