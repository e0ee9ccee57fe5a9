"""The pure geometry between NIfTI voxels (RAS world) and DICOM slices (LPS patient coordinates).

NIfTI's affine maps a voxel (i, j, k) to RAS+ millimetres; DICOM's ImagePositionPatient,
ImageOrientationPatient and PixelSpacing place a pixel (row, column) of a slice in LPS+
millimetres. `ras_to_lps` is the one place the two worlds meet (x and y change sign).
`dicom_layout` decides once how a volume's voxel axes become a series' columns, rows and
slices, so that the slices read the right way up in the viewer; the same layout cuts the image
and its label map. Arrays and numbers in, arrays and dataclasses out: this module must never
read files or touch the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# |cos| of the angle between two voxel axes above which an affine counts as shearing.
ORTHOGONALITY_TOLERANCE = 1e-4

_RAS_LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_to_lps(affine: np.ndarray) -> np.ndarray:
    """Return the 4x4 affine that maps the same voxels to LPS (DICOM) instead of RAS (NIfTI) millimetres.

    The flip of x and y is its own inverse, so the same function takes LPS back to RAS
    (`lps_to_ras` is this function under the name that reads right at the call site).
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"an affine is 4x4, not {affine.shape}")
    return _RAS_LPS_FLIP @ affine


lps_to_ras = ras_to_lps


def check_affine(affine: np.ndarray) -> None:
    """Raise ValueError naming the problem when an affine is not finite, singular or shears its voxel axes."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine is not a finite 4x4 matrix: {affine.tolist()}")
    columns = affine[:3, :3]
    lengths = np.linalg.norm(columns, axis=0)
    if np.any(lengths < 1e-6) or abs(np.linalg.det(columns)) < 1e-9 * float(np.prod(np.maximum(lengths, 1e-6))):
        raise ValueError(f"singular affine (voxel sizes {np.round(lengths, 6).tolist()} mm): voxels have no extent")
    units = columns / lengths
    for a, b in ((0, 1), (0, 2), (1, 2)):
        cosine = float(abs(units[:, a] @ units[:, b]))
        if cosine > ORTHOGONALITY_TOLERANCE:
            angle = float(np.degrees(np.arccos(min(cosine, 1.0))))
            raise ValueError(
                f"shearing affine: voxel axes {a} and {b} meet at {angle:.3f} degrees, not 90 "
                "(a DICOM slice has square corners)"
            )


# Standard display directions (LPS) for the rows and columns of each plane: patient left on the
# viewer's right, anterior (axial) or head (coronal, sagittal) at the top.
_DISPLAY_DIRECTIONS = {
    2: (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),  # axial: slices along z
    1: (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),  # coronal: slices along y
    0: (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),  # sagittal: slices along x
}


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class SliceLayout:
    """How a volume's voxel axes become a DICOM series: which voxel axis runs along the columns, rows
    and slices, whether each is read backwards, and where every slice sits (LPS mm).

    `affine_lps` maps (column, row, slice index, 1) to LPS millimetres.
    """

    axes: tuple[int, int, int]
    reversed: tuple[bool, bool, bool]
    shape: tuple[int, int, int]
    affine_lps: np.ndarray

    @property
    def columns(self) -> int:
        return self.shape[self.axes[0]]

    @property
    def rows(self) -> int:
        return self.shape[self.axes[1]]

    @property
    def slices(self) -> int:
        return self.shape[self.axes[2]]

    @property
    def image_orientation_patient(self) -> list[float]:
        """Row direction (along a row, as the column index grows) then column direction, unit LPS vectors."""
        column_step, row_step = self.affine_lps[:3, 0], self.affine_lps[:3, 1]
        return [*(column_step / np.linalg.norm(column_step)), *(row_step / np.linalg.norm(row_step))]

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """DICOM order: between rows, then between columns."""
        return float(np.linalg.norm(self.affine_lps[:3, 1])), float(np.linalg.norm(self.affine_lps[:3, 0]))

    @property
    def slice_spacing_mm(self) -> float:
        return float(np.linalg.norm(self.affine_lps[:3, 2]))

    def image_position_patient(self, slice_index: int) -> list[float]:
        """LPS mm of the centre of the first pixel (row 0, column 0) of a slice."""
        if not 0 <= slice_index < self.slices:
            raise ValueError(f"slice index {slice_index} is outside 0..{self.slices - 1}")
        return [float(v) for v in self.affine_lps[:3, :] @ np.array([0.0, 0.0, slice_index, 1.0])]

    def to_slices(self, volume: np.ndarray) -> np.ndarray:
        """Return the volume as [slice, row, column] in this layout's order (a view where possible)."""
        volume = np.asarray(volume)
        if volume.shape != self.shape:
            raise ValueError(f"volume shape {volume.shape} does not match the layout's {self.shape}")
        ordered = np.transpose(volume, self.axes)  # [column, row, slice]
        for axis, backwards in enumerate(self.reversed):
            if backwards:
                ordered = np.flip(ordered, axis=axis)
        return np.transpose(ordered, (2, 1, 0))


def dicom_layout(*, affine_ras: np.ndarray, shape: tuple[int, int, int]) -> SliceLayout:
    """Return how to cut a volume with this affine into slices along its third voxel axis.

    The third axis stays the slice axis (NIfTI writers keep the acquisition's slices there); the
    in-plane axes are swapped and reversed as needed so that a slice shows the patient's left on
    the right and anterior (axial) or head (coronal, sagittal) at the top, and the slices run along
    the normal of the image plane, the order the viewer sorts them in. Only axis swaps and flips:
    voxel values are never resampled.
    """
    if len(shape) != 3 or any(int(n) < 1 for n in shape):
        raise ValueError(f"a volume has three non-empty axes, not shape {tuple(shape)}")
    check_affine(affine_ras)
    affine_lps = ras_to_lps(affine_ras)
    directions = affine_lps[:3, :3] / np.linalg.norm(affine_lps[:3, :3], axis=0)
    plane = int(np.argmax(np.abs(directions[:, 2])))
    column_target, row_target = _DISPLAY_DIRECTIONS[plane]
    in_plane = (0, 1)
    column_axis = max(in_plane, key=lambda axis: (abs(directions[:, axis] @ column_target), -axis))
    row_axis = 1 - column_axis
    column_reversed = bool(directions[:, column_axis] @ column_target < 0)
    row_reversed = bool(directions[:, row_axis] @ row_target < 0)
    column_direction = directions[:, column_axis] * (-1 if column_reversed else 1)
    row_direction = directions[:, row_axis] * (-1 if row_reversed else 1)
    slice_reversed = bool(directions[:, 2] @ np.cross(column_direction, row_direction) < 0)

    axes = (column_axis, row_axis, 2)
    flips = (column_reversed, row_reversed, slice_reversed)
    shape = tuple(int(n) for n in shape)
    # voxel index = start + step * layout index, per axis; composed with the voxel affine.
    layout_to_voxel = np.zeros((4, 4))
    layout_to_voxel[3, 3] = 1.0
    for layout_axis, (voxel_axis, backwards) in enumerate(zip(axes, flips, strict=True)):
        layout_to_voxel[voxel_axis, layout_axis] = -1.0 if backwards else 1.0
        layout_to_voxel[voxel_axis, 3] = shape[voxel_axis] - 1 if backwards else 0.0
    return SliceLayout(axes=axes, reversed=flips, shape=shape, affine_lps=affine_lps @ layout_to_voxel)


def slice_affine_lps(
    *,
    positions_lps: list[list[float]] | np.ndarray,
    orientation: list[float] | np.ndarray,
    pixel_spacing_mm: tuple[float, float] | list[float],
    slice_spacing_mm: float | None = None,
    tolerance_mm: float = 1e-2,
) -> np.ndarray:
    """Return the affine mapping (column, row, slice index, 1) to LPS mm for slices given in order.

    `positions_lps` are the slices' ImagePositionPatient, `orientation` their shared
    ImageOrientationPatient, `pixel_spacing_mm` DICOM's (between rows, between columns). A single
    slice takes its thickness along the plane's normal from `slice_spacing_mm` (1 mm without it).
    Raises ValueError when the slices are not evenly spaced along one line (no affine describes them).
    """
    positions = np.asarray(positions_lps, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) == 0:
        raise ValueError(f"slice positions must be a non-empty list of 3-vectors, not shape {positions.shape}")
    orientation = np.asarray(orientation, dtype=np.float64)
    if orientation.shape != (6,):
        raise ValueError(f"ImageOrientationPatient has six values, not {orientation.tolist()}")
    row_spacing, column_spacing = (float(v) for v in pixel_spacing_mm)
    if row_spacing <= 0 or column_spacing <= 0:
        raise ValueError(f"pixel spacing must be positive, not {list(pixel_spacing_mm)}")
    along_row, along_column = orientation[:3], orientation[3:]
    if len(positions) > 1:
        step = (positions[-1] - positions[0]) / (len(positions) - 1)
        expected = positions[0] + np.outer(np.arange(len(positions)), step)
        worst = float(np.max(np.linalg.norm(positions - expected, axis=1)))
        if worst > tolerance_mm:
            raise ValueError(f"slices are not evenly spaced on a line: a slice is {worst:.3f} mm off")
        if float(np.linalg.norm(step)) < 1e-6:
            raise ValueError("slices share one position: no slice spacing")
    else:
        normal = np.cross(along_row, along_column)
        step = normal * float(slice_spacing_mm or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = along_row * column_spacing
    affine[:3, 1] = along_column * row_spacing
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    return affine
