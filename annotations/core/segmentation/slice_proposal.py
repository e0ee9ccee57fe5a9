"""A lesion's mask on one slice from a reader's RECIST line: crop, seed, segment with a library method, check.

The line's middle is the lesion seed; everything farther from the line's midpoint than a bound set by the
line's length (and the crop's border) is background. Intensities are normalised from the seed's own
statistics (lesion about 1, surroundings about 0), so CT in HU and MR in arbitrary units go through the
same path. A proposal is never larger than the bound, and a prompt on air, fat or bone, or on tissue that
does not stand out from its surroundings, raises `NoLesionFound` rather than returning a mask that floods
an organ. Pure: arrays in, dataclasses out; no Django, nothing else from the project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import skimage
from scipy import ndimage

from .axes import Point, recist_axes
from .errors import NoLesionFound
from .segmenters import DEFAULT_SEGMENTER, Segmenter

ALGORITHM_NAME = "readerboard seeded watershed"
# 2: propagation keeps the lesion's side of its surroundings and stops on a slice that looks like the organ.
ALGORITHM_VERSION = f"2 (scikit-image {skimage.__version__} watershed)"

# The proposal lies inside a disc of this many line lengths' diameter around the line's midpoint.
BOUND_DIAMETER_PER_LINE = 1.5
# Crop half-width, in line lengths: the bound plus a margin of background to learn it from.
CROP_HALF_PER_LINE = 0.95
# The crop is resampled so that the line spans about this many working pixels (at most 3 per native pixel).
WORK_PIXELS_PER_LINE = 40.0
# Part of the line used as lesion seed: readers' end points land on or just past the edge.
SEED_FROM, SEED_TO = 0.2, 0.8
MIN_LINE_MM = 3.0
# Acceptance: lesion against its rim, in units of the image's noise; a real lesion's long axis against the line's.
MIN_CONTRAST_SNR = 0.6
MIN_LONG_AXIS_PER_LINE = 0.4
MAX_BOUND_FILL = 0.8
# CT only: a seed whose median is here is air/fat (below) or bone (above), not a soft-tissue lesion.
CT_MIN_SEED_HU = -60.0
CT_MAX_SEED_HU = 300.0


@dataclass(frozen=True)
class SliceProposal:
    """A proposed lesion mask on one slice and how it was made.

    ``mask`` has the slice's shape; ``bound_centre``/``bound_radius_mm`` is the disc it never leaves;
    ``lesion_level``/``background_level`` are the intensities (image units) the lesion and its surroundings
    were normalised from; ``contrast_snr`` is the lesion's contrast against its rim in noise units.
    """

    mask: np.ndarray
    algorithm: str
    algorithm_version: str
    bound_centre: Point
    bound_radius_mm: float
    lesion_level: float
    background_level: float
    contrast_snr: float


@dataclass(frozen=True)
class _Grid:
    """A crop of the slice and the isotropic working grid laid over it (native pixel coordinates)."""

    row0: int
    row1: int
    col0: int
    col1: int
    step_rows: float  # native rows per working pixel
    step_cols: float
    shape: tuple[int, int]

    @classmethod
    def around(
        cls, *, shape: tuple[int, int], spacing_mm: tuple[float, float], centre: Point, half_mm: float, work_mm: float
    ) -> _Grid:
        row_mm, col_mm = spacing_mm
        col, row = centre
        row0 = max(0, math.floor(row - half_mm / row_mm))
        row1 = min(shape[0], math.ceil(row + half_mm / row_mm) + 1)
        col0 = max(0, math.floor(col - half_mm / col_mm))
        col1 = min(shape[1], math.ceil(col + half_mm / col_mm) + 1)
        if row1 - row0 < 2 or col1 - col0 < 2:
            raise ValueError(f"prompt at {centre!r} leaves no image to crop in a slice of shape {shape}")
        step_rows, step_cols = work_mm / row_mm, work_mm / col_mm
        work_shape = (int((row1 - 1 - row0) / step_rows) + 1, int((col1 - 1 - col0) / step_cols) + 1)
        return cls(row0, row1, col0, col1, step_rows, step_cols, work_shape)

    def crop(self, array: np.ndarray) -> np.ndarray:
        return array[self.row0 : self.row1, self.col0 : self.col1]

    def sample(self, crop: np.ndarray, *, order: int) -> np.ndarray:
        """Values of a crop-shaped array at the working pixels (linear or nearest)."""
        rows = np.arange(self.shape[0]) * self.step_rows
        cols = np.arange(self.shape[1]) * self.step_cols
        if self.step_rows == 1.0 and self.step_cols == 1.0:
            return crop[: self.shape[0], : self.shape[1]].astype(np.float32)
        coords = np.meshgrid(rows, cols, indexing="ij")
        return ndimage.map_coordinates(crop.astype(np.float32), coords, order=order, mode="nearest")

    def points_to_work(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Working (row, col) indices of native (col, row) points, clipped to the grid."""
        rows = np.clip(np.round((points[:, 1] - self.row0) / self.step_rows), 0, self.shape[0] - 1).astype(int)
        cols = np.clip(np.round((points[:, 0] - self.col0) / self.step_cols), 0, self.shape[1] - 1).astype(int)
        return rows, cols

    def to_native(self, work_mask: np.ndarray, slice_shape: tuple[int, int]) -> np.ndarray:
        """A working-grid mask back on the full slice, boundaries interpolated linearly."""
        full = np.zeros(slice_shape, dtype=bool)
        if self.step_rows == 1.0 and self.step_cols == 1.0:
            full[self.row0 : self.row0 + self.shape[0], self.col0 : self.col0 + self.shape[1]] = work_mask
            return full
        rows = np.arange(self.row1 - self.row0) / self.step_rows
        cols = np.arange(self.col1 - self.col0) / self.step_cols
        coords = np.meshgrid(rows, cols, indexing="ij")
        values = ndimage.map_coordinates(work_mask.astype(np.float32), coords, order=1, mode="constant")
        full[self.row0 : self.row1, self.col0 : self.col1] = values >= 0.5
        return full


def noise_sigma(image: np.ndarray) -> float:
    """Robust noise standard deviation of an image from its neighbour differences (MAD, edges barely count)."""
    diffs = np.concatenate([np.diff(image, axis=0).ravel(), np.diff(image, axis=1).ravel()])
    if diffs.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2.0))


def _largest_seeded_component(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    overlap = np.bincount(labels[seeds & mask], minlength=count + 1)
    overlap[0] = 0
    if overlap.max() == 0:
        return np.zeros_like(mask)
    return labels == int(np.argmax(overlap))


def _disc(shape: tuple[int, int], spacing_mm: tuple[float, float], centre: Point, radius_mm: float) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return ((rows - centre[1]) * spacing_mm[0]) ** 2 + ((cols - centre[0]) * spacing_mm[1]) ** 2 <= radius_mm**2


@dataclass(frozen=True)
class _Segmented:
    mask: np.ndarray
    lesion_level: float
    background_level: float


def segment_seeded(
    *,
    image: np.ndarray,
    spacing_mm: tuple[float, float],
    grid: _Grid,
    allowed: np.ndarray,
    lesion_points: np.ndarray | None = None,
    lesion_seed_mask: np.ndarray | None = None,
    levels: tuple[float, float] | None = None,
    segmenter: Segmenter,
) -> _Segmented:
    """Segment inside ``grid``'s crop: lesion seeds given, background = outside ``allowed`` and the crop border.

    Seeds come as native (col, row) points, a full-slice mask, or both; ``levels`` (lesion, background) in
    image units fixes the normalisation (propagation keeps the seed slice's), otherwise it is taken from the
    seeds and from the background region.
    """
    native = grid.crop(image).astype(np.float32)
    sigma = (max(0.9 * grid.step_rows, 0.8), max(0.9 * grid.step_cols, 0.8))
    smoothed = ndimage.gaussian_filter(native, sigma=sigma, mode="nearest")
    work = grid.sample(smoothed, order=1)
    allowed_work = grid.sample(grid.crop(allowed), order=1) >= 0.5
    lesion = np.zeros(grid.shape, dtype=bool)
    if lesion_points is not None and len(lesion_points):
        lesion[grid.points_to_work(lesion_points)] = True
    if lesion_seed_mask is not None:
        lesion |= grid.sample(grid.crop(lesion_seed_mask), order=1) >= 0.5
    lesion &= allowed_work
    if not lesion.any():
        raise NoLesionFound("the prompt lies outside the region a lesion could occupy")
    border = np.ones(grid.shape, dtype=bool)
    border[1:-1, 1:-1] = False
    outside = ~allowed_work | border
    if levels is None:
        lesion_level = float(np.median(work[lesion]))
        surroundings = work[outside & ~lesion] if (outside & ~lesion).any() else work[~lesion]
        background_level = lesion_level + _signed_spread(surroundings, lesion_level)
    else:
        lesion_level, background_level = levels
    noise = max(noise_sigma(work), 1e-6)
    scale = lesion_level - background_level
    if abs(scale) < 2.0 * noise:
        scale = math.copysign(2.0 * noise, scale if scale != 0 else 1.0)
    # Symmetric about the lesion (1): what lies beyond the lesion's level counts as much as the organ (0).
    normalised = np.clip((work - background_level) / scale, -1.0, 3.0)
    # Far from the lesion's level on either side (a vessel, fat beside a hypodense lesion): not lesion.
    unlike = np.abs(normalised - 1.0) > max(1.75, 4.0 * noise / abs(scale))
    background = (outside | unlike) & ~lesion
    work_mask = segmenter(normalised, lesion, background)
    work_mask = _largest_seeded_component(work_mask & allowed_work, lesion)
    work_mask = ndimage.binary_fill_holes(work_mask)
    if work_mask.sum() >= 50:
        opened = ndimage.binary_opening(work_mask, structure=ndimage.generate_binary_structure(2, 1))
        opened = _largest_seeded_component(opened, lesion)
        if opened.any():
            work_mask = opened
    mask = grid.to_native(work_mask, image.shape) & allowed
    mask = ndimage.binary_fill_holes(_largest_component(mask))
    return _Segmented(mask=mask, lesion_level=lesion_level, background_level=background_level)


def _signed_spread(surroundings: np.ndarray, lesion_level: float) -> float:
    """Mean absolute departure of the surroundings from the lesion's level, signed like their median's.

    Surroundings of two tissues (fat on one side, muscle on the other) can have a median right at the
    lesion's level; their mean departure still measures how far the lesion's edges step.
    """
    if surroundings.size == 0:
        return 0.0
    spread = float(np.abs(surroundings - lesion_level).mean())
    return spread if float(np.median(surroundings)) >= lesion_level else -spread


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def contrast_snr(*, image: np.ndarray, mask: np.ndarray, spacing_mm: tuple[float, float]) -> float:
    """How much more the rim (1 to about 3 mm outside) departs from the lesion than the lesion does, in noise units.

    Departures are absolute, on a lightly smoothed image, so a rim of fat on one side and muscle on the other
    counts on both sides; a "lesion" cut out of uniform tissue scores about 0.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 0.0
    pad = max(3, math.ceil(3.0 / min(spacing_mm)) + 2)
    r0, r1 = max(0, rows.min() - pad), min(image.shape[0], rows.max() + pad + 1)
    c0, c1 = max(0, cols.min() - pad), min(image.shape[1], cols.max() + pad + 1)
    local = mask[r0:r1, c0:c1]
    values = image[r0:r1, c0:c1].astype(np.float64)
    smoothed = ndimage.gaussian_filter(values, sigma=(0.7 / spacing_mm[0], 0.7 / spacing_mm[1]), mode="nearest")
    rim_px = max(2, round(3.0 / min(spacing_mm)))
    near = ndimage.binary_dilation(local, iterations=1)
    far = ndimage.binary_dilation(local, iterations=rim_px)
    rim = far & ~near
    inner = ndimage.binary_erosion(local, iterations=1) if local.sum() > 20 else local
    if not rim.any() or not inner.any():
        return 0.0
    level = float(np.median(smoothed[inner]))
    departure = float(np.abs(smoothed[rim] - level).mean() - np.abs(smoothed[inner] - level).mean())
    return departure / max(noise_sigma(values), 1e-6)


def _check_point(name: str, point: Point, shape: tuple[int, int]) -> tuple[float, float]:
    if len(point) != 2 or not all(np.isfinite(v) for v in point):
        raise ValueError(f"{name} must be a (col, row) pair of finite numbers, got {point!r}")
    col, row = float(point[0]), float(point[1])
    if not (0 <= col <= shape[1] - 1 and 0 <= row <= shape[0] - 1):
        raise ValueError(f"{name} {point!r} lies outside the slice of shape {shape} (rows, cols)")
    return col, row


def check_image(image: np.ndarray, ndim: int, name: str = "image") -> np.ndarray:
    """The array as float, or a ValueError naming what is wrong with it."""
    array = np.asarray(image)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if min(array.shape) < 2:
        raise ValueError(f"{name} is too small: shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def check_spacing(spacing_mm: tuple[float, ...], n: int, name: str = "spacing") -> tuple[float, ...]:
    """The spacing as floats, or a ValueError when it is not ``n`` positive finite numbers."""
    if len(spacing_mm) != n or not all(np.isfinite(s) and s > 0 for s in spacing_mm):
        raise ValueError(f"{name} must be {n} positive numbers in mm, got {spacing_mm!r}")
    return tuple(float(s) for s in spacing_mm)


def _line_points(start: Point, end: Point, *, step_px: float, t_from: float, t_to: float) -> np.ndarray:
    start_a, end_a = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    length = float(np.hypot(*(end_a - start_a)))
    count = max(2, math.ceil(length * (t_to - t_from) / step_px) + 1)
    t = np.linspace(t_from, t_to, count)[:, None]
    return start_a + t * (end_a - start_a)


def propose_from_line(
    *,
    image: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    start: Point,
    end: Point,
    short_axis: tuple[Point, Point] | None = None,
    is_ct: bool = True,
    segmenter: Segmenter = DEFAULT_SEGMENTER,
) -> SliceProposal:
    """Propose the mask of the lesion a RECIST line (long axis, optionally its short axis) was drawn across.

    ``image`` is one slice (rows, cols): HU when ``is_ct``, any units otherwise; ``pixel_spacing_mm`` is
    (row spacing, col spacing) as in DICOM PixelSpacing; points are (col, row) pixels. The mask lies inside
    a disc of `BOUND_DIAMETER_PER_LINE` line lengths around the line's midpoint. Raises `NoLesionFound` when
    the line lies on air, fat or bone (CT), when nothing there stands out from its surroundings, or when the
    result fills the bound (it would flood an organ); `ValueError` for malformed input.
    """
    array = check_image(image, 2)
    spacing = check_spacing(pixel_spacing_mm, 2, "pixel_spacing_mm")
    start_p = _check_point("start", start, array.shape)
    end_p = _check_point("end", end, array.shape)
    length_mm = math.hypot((end_p[0] - start_p[0]) * spacing[1], (end_p[1] - start_p[1]) * spacing[0])
    if length_mm < MIN_LINE_MM:
        raise ValueError(f"line is {length_mm:.2f} mm long; a lesion prompt needs at least {MIN_LINE_MM} mm")
    seeds = [_line_points(start_p, end_p, step_px=0.25, t_from=SEED_FROM, t_to=SEED_TO)]
    if short_axis is not None:
        short_start = _check_point("short_axis start", short_axis[0], array.shape)
        short_end = _check_point("short_axis end", short_axis[1], array.shape)
        seeds.append(_line_points(short_start, short_end, step_px=0.25, t_from=SEED_FROM, t_to=SEED_TO))
    lesion_points = np.concatenate(seeds)
    centre = ((start_p[0] + end_p[0]) / 2.0, (start_p[1] + end_p[1]) / 2.0)
    if is_ct:
        rows, cols = np.round(lesion_points[:, 1]).astype(int), np.round(lesion_points[:, 0]).astype(int)
        seed_hu = float(np.median(array[rows, cols]))
        if seed_hu < CT_MIN_SEED_HU:
            raise NoLesionFound(f"the line lies on air or fat (median {seed_hu:.0f} HU)")
        if seed_hu > CT_MAX_SEED_HU:
            raise NoLesionFound(f"the line lies on bone or contrast-filled vessel (median {seed_hu:.0f} HU)")
    return _propose(
        image=array,
        spacing=(spacing[0], spacing[1]),
        centre=centre,
        extent_mm=length_mm,
        lesion_points=lesion_points,
        segmenter=segmenter,
    )


def _propose(
    *,
    image: np.ndarray,
    spacing: tuple[float, float],
    centre: Point,
    extent_mm: float,
    lesion_points: np.ndarray,
    segmenter: Segmenter,
    min_long_axis_mm: float | None = None,
) -> SliceProposal:
    """Segment the lesion seeded at ``lesion_points`` within the bound of a prompt ``extent_mm`` long; check it."""
    bound_radius_mm = 0.5 * BOUND_DIAMETER_PER_LINE * extent_mm
    work_mm = max(min(spacing) / 3.0, extent_mm / WORK_PIXELS_PER_LINE)
    grid = _Grid.around(
        shape=image.shape,
        spacing_mm=spacing,
        centre=centre,
        half_mm=CROP_HALF_PER_LINE * extent_mm + 2 * work_mm,
        work_mm=work_mm,
    )
    allowed = _disc(image.shape, spacing, centre, bound_radius_mm)
    result = segment_seeded(
        image=image, spacing_mm=spacing, grid=grid, allowed=allowed, lesion_points=lesion_points, segmenter=segmenter
    )
    mask = result.mask
    if not mask.any():
        raise NoLesionFound("nothing at the line could be told apart from its surroundings")
    area_mm2 = float(mask.sum()) * spacing[0] * spacing[1]
    if area_mm2 > MAX_BOUND_FILL * math.pi * bound_radius_mm**2:
        raise NoLesionFound("the region at the line runs on past the line's ends (an organ, not a lesion)")
    snr = contrast_snr(image=image, mask=mask, spacing_mm=spacing)
    if snr < MIN_CONTRAST_SNR:
        raise NoLesionFound("the region at the line does not stand out from its surroundings")
    min_long_axis_mm = MIN_LONG_AXIS_PER_LINE * extent_mm if min_long_axis_mm is None else min_long_axis_mm
    if recist_axes(mask, spacing).long_axis_mm < min_long_axis_mm:
        raise NoLesionFound("only a sliver at the line stands out, far shorter than the line")
    return SliceProposal(
        mask=mask,
        algorithm=segmenter.name,
        algorithm_version=ALGORITHM_VERSION,
        bound_centre=centre,
        bound_radius_mm=bound_radius_mm,
        lesion_level=result.lesion_level,
        background_level=result.background_level,
        contrast_snr=snr,
    )
