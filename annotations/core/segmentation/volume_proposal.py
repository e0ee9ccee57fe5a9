"""A lesion's 3D mask: propagation from one slice's mask through its neighbours, and proposals from one tap.

Propagation segments each next slice seeded from the core of the previous slice's mask and bounded by a
margin around it, with the seed slice's lesion and background levels; it stops where the lesion ends
(the core no longer looks like lesion, or nothing is left), where a slice's mask looks more like the organ
around the lesion than like the lesion, or where a slice fails the size and position check against the
previous one, so it never floods into an organ. Re-propagating from a corrected slice is
calling `propagate` again with the corrected mask as seed. Pure: arrays in, dataclasses out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .axes import Axes, Point, recist_axes
from .errors import NoLesionFound
from .segmenters import DEFAULT_SEGMENTER, Segmenter
from .slice_proposal import (
    ALGORITHM_VERSION,
    CT_MAX_SEED_HU,
    CT_MIN_SEED_HU,
    WORK_PIXELS_PER_LINE,
    _disc,
    _Grid,
    _propose,
    _signed_spread,
    check_image,
    check_spacing,
    contrast_snr,
    noise_sigma,
    segment_seeded,
)

# Size and position check of a slice against the previous one.
MAX_AREA_GROWTH = 1.5
MAX_CENTROID_SHIFT_PER_RADIUS = 0.5
MIN_OVERLAP = 0.5  # of the smaller of the two masks
# The next slice may reach this far past the previous mask: a fraction of its diameter plus a slice's worth.
GROWTH_MARGIN_PER_DIAMETER = 0.15
# The core of the previous mask (lesion seed on the next slice): depth at least this fraction of its deepest.
CORE_DEPTH = 0.5
# The next slice's core must sit at least this far from the background level towards the lesion level.
MIN_LESION_LIKENESS = 0.5
MIN_AREA_MM2 = 3.0
MIN_CONTRAST_SNR_3D = 0.25
# Levels follow the lesion from slice to slice (MR bias fields drift): this much weight to each new slice.
LEVEL_UPDATE = 0.5
# 3D bound: an ellipsoid around the seed mask's centre, radii in the seed slice's long axes (in plane, deep).
BOUND_RADIUS_PER_LONG_AXIS = 0.75
BOUND_DEPTH_PER_LONG_AXIS = 0.7
# Once a slice's area is under this fraction of the largest so far, each next slice must shrink by
# `TAIL_SHRINK`: a lesion's end narrows, a vessel or organ running on through the slices does not.
TAIL_FRACTION = 0.5
TAIL_SHRINK = 0.95
# Tap: candidate lesion sizes (bound diameters are 1.5 times these), smallest first.
TAP_SIZES_MM = (8.0, 12.0, 18.0, 27.0, 40.0, 60.0, 80.0)
TAP_SEED_RADIUS_MM = 1.5
TAP_REFINEMENTS = 2
# The best of several sizes stands out more by chance than one line's proposal: a stricter contrast floor.
TAP_MIN_CONTRAST_SNR = 1.0


@dataclass(frozen=True)
class VolumeProposal:
    """A proposed 3D lesion mask, slice by slice, with how far it ran and why it stopped.

    ``masks`` maps slice index to a boolean (rows, cols) mask, one entry per slice the lesion is on;
    ``stopped`` says why each direction ("up" = increasing index) ended; ``axes`` are the RECIST axes on
    ``largest_slice`` (the slice of largest area).
    """

    masks: dict[int, np.ndarray]
    seed_slice: int
    largest_slice: int
    axes: Axes
    volume_mm3: float
    stopped: dict[str, str]
    algorithm: str
    algorithm_version: str

    def as_array(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The proposal as one boolean (slices, rows, cols) array of ``shape``."""
        volume = np.zeros(shape, dtype=bool)
        for index, mask in self.masks.items():
            volume[index] = mask
        return volume


def _levels(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float, float]:
    """Median lesion intensity, a background level and the organ's level around the lesion.

    The background level is the lesion's plus the signed mean departure of its rim (it measures how far the
    edges step, whatever lies on each side); the organ level is the rim's median, the tissue most of the
    lesion's outline borders on.
    """
    rows, cols = np.nonzero(mask)
    pad = math.ceil(4.0 / min(spacing)) + 2
    r0, r1 = max(0, rows.min() - pad), min(image.shape[0], rows.max() + pad + 1)
    c0, c1 = max(0, cols.min() - pad), min(image.shape[1], cols.max() + pad + 1)
    local = mask[r0:r1, c0:c1]
    values = ndimage.gaussian_filter(image[r0:r1, c0:c1].astype(np.float64), sigma=1.0)
    rim = ndimage.binary_dilation(local, iterations=max(2, round(3.0 / min(spacing)))) & ~ndimage.binary_dilation(
        local, iterations=1
    )
    inner = ndimage.binary_erosion(local) if local.sum() > 20 else local
    if not inner.any():
        inner = local
    lesion_level = float(np.median(values[inner]))
    surroundings = values[rim] if rim.any() else values[~local]
    return lesion_level, lesion_level + _signed_spread(surroundings, lesion_level), float(np.median(surroundings))


def _local_noise(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """The image's noise standard deviation around the mask (a margin of 10 mm), from neighbour differences."""
    rows, cols = np.nonzero(mask)
    pad_r, pad_c = math.ceil(10.0 / spacing[0]), math.ceil(10.0 / spacing[1])
    r0, r1 = max(0, rows.min() - pad_r), min(image.shape[0], rows.max() + pad_r + 1)
    c0, c1 = max(0, cols.min() - pad_c), min(image.shape[1], cols.max() + pad_c + 1)
    return noise_sigma(image[r0:r1, c0:c1].astype(np.float64))


def _follow_levels(
    current: tuple[float, float, float], seen: tuple[float, float, float], *, side: float
) -> tuple[float, float, float]:
    """Levels moved `LEVEL_UPDATE` of the way to a new slice's, keeping the background on the seed's ``side``.

    Lesion level, contrast (its distance to the background level) and organ level follow the slices
    separately; a new slice whose rim reads as the other side of the lesion contributes its contrast's
    size, not its sign.
    """
    lesion = (1 - LEVEL_UPDATE) * current[0] + LEVEL_UPDATE * seen[0]
    contrast = (1 - LEVEL_UPDATE) * abs(current[1] - current[0]) + LEVEL_UPDATE * abs(seen[1] - seen[0])
    organ = (1 - LEVEL_UPDATE) * current[2] + LEVEL_UPDATE * seen[2]
    return lesion, lesion + side * contrast, organ


def _nearer_the_organ(value: float, levels: tuple[float, float, float], *, side: float, noise: float) -> bool:
    """Whether ``value`` lies nearer the organ's level than the lesion's (a slice of organ, not of lesion).

    Only an organ on the background's ``side`` of the lesion counts: one on the other side (a rim of mostly
    fat around a lesion brighter than fat but darker than the muscle it lies on) is not what it fades into.
    Nor does one within ``noise`` (the image's noise standard deviation) of the lesion's level: the levels
    were read off a rim that may still be partly lesion, and that close they cannot tell the two apart.
    """
    lesion, _, organ = levels
    if (organ - lesion) * side <= 0 or abs(organ - lesion) <= noise:
        return False
    return abs(value - organ) < abs(value - lesion)


def _area_centroid(mask: np.ndarray, spacing: tuple[float, float]) -> tuple[float, np.ndarray]:
    rows, cols = np.nonzero(mask)
    return rows.size * spacing[0] * spacing[1], np.array([rows.mean() * spacing[0], cols.mean() * spacing[1]])


def _next_slice(
    *,
    image: np.ndarray,
    previous: np.ndarray,
    spacing: tuple[float, float],
    thickness_mm: float,
    levels: tuple[float, float, float],
    side: float,
    noise: float,
    work_mm: float,
    segmenter: Segmenter,
) -> tuple[np.ndarray | None, str]:
    """The lesion's mask on ``image`` seeded from ``previous`` (the neighbouring slice's), or None and why not."""
    area_prev, centroid_prev = _area_centroid(previous, spacing)
    diameter_prev = 2.0 * math.sqrt(area_prev / math.pi)
    rows, cols = np.nonzero(previous)
    margin_mm = GROWTH_MARGIN_PER_DIAMETER * diameter_prev + thickness_mm
    pad_r, pad_c = math.ceil(margin_mm / spacing[0]) + 3, math.ceil(margin_mm / spacing[1]) + 3
    r0, r1 = max(0, rows.min() - pad_r), min(image.shape[0], rows.max() + pad_r + 1)
    c0, c1 = max(0, cols.min() - pad_c), min(image.shape[1], cols.max() + pad_c + 1)
    local_prev = previous[r0:r1, c0:c1]
    depth = ndimage.distance_transform_edt(local_prev, sampling=spacing)
    core = depth >= CORE_DEPTH * depth.max()
    lesion_level, background_level, _ = levels
    span = lesion_level - background_level
    smoothed = ndimage.gaussian_filter(image[r0:r1, c0:c1].astype(np.float64), sigma=1.0)
    if span == 0:
        return None, "lesion ended: no contrast to follow"
    # 1 at the lesion's level, 0 at its surroundings' and at twice the contrast beyond (fat beside a node).
    likeness = 1.0 - np.abs(smoothed - lesion_level) / abs(span)
    if float(np.median(likeness[core])) < MIN_LESION_LIKENESS:
        return None, "lesion ended: its core no longer looks like lesion"
    seeds_local = core & (likeness >= MIN_LESION_LIKENESS)
    if not seeds_local.any():
        return None, "lesion ended: its core no longer looks like lesion"
    outside_local = ndimage.distance_transform_edt(~local_prev, sampling=spacing)
    allowed = np.zeros(image.shape, dtype=bool)
    allowed[r0:r1, c0:c1] = outside_local <= margin_mm
    seeds = np.zeros(image.shape, dtype=bool)
    seeds[r0:r1, c0:c1] = seeds_local
    centre = ((c0 + c1 - 1) / 2.0, (r0 + r1 - 1) / 2.0)
    half_mm = max((r1 - r0) * spacing[0], (c1 - c0) * spacing[1]) / 2.0
    grid = _Grid.around(shape=image.shape, spacing_mm=spacing, centre=centre, half_mm=half_mm, work_mm=work_mm)
    mask = segment_seeded(
        image=image,
        spacing_mm=spacing,
        grid=grid,
        allowed=allowed,
        lesion_seed_mask=seeds,
        levels=(lesion_level, background_level),
        segmenter=segmenter,
    ).mask
    area, centroid = _area_centroid(mask, spacing) if mask.any() else (0.0, centroid_prev)
    if area < MIN_AREA_MM2:
        return None, "lesion ended: too small"
    if area > MAX_AREA_GROWTH * area_prev + 2.0 * thickness_mm * diameter_prev:
        return None, "size check failed: grew too fast"
    if np.hypot(*(centroid - centroid_prev)) > MAX_CENTROID_SHIFT_PER_RADIUS * diameter_prev / 2.0 + thickness_mm:
        return None, "position check failed: moved too far"
    overlap = float((mask & previous).sum()) * spacing[0] * spacing[1]
    if overlap < MIN_OVERLAP * min(area, area_prev):
        return None, "position check failed: too little overlap"
    if 1.0 - abs(float(np.median(image[mask])) - lesion_level) / abs(span) < MIN_LESION_LIKENESS:
        return None, "lesion ended: the mask no longer looks like lesion"
    if _nearer_the_organ(float(np.median(image[mask])), levels, side=side, noise=noise):
        return None, "lesion ended: the mask looks like the organ around it"
    if contrast_snr(image=image, mask=mask, spacing_mm=spacing) < MIN_CONTRAST_SNR_3D:
        return None, "lesion ended: no contrast against its rim"
    return mask, ""


def propagate(
    *,
    volume: np.ndarray,
    spacing_mm: tuple[float, float, float],
    seed_slice: int,
    seed_mask: np.ndarray,
    segmenter: Segmenter = DEFAULT_SEGMENTER,
) -> VolumeProposal:
    """Propagate ``seed_mask`` (on ``seed_slice``) up and down ``volume`` (slices, rows, cols) until the lesion ends.

    ``spacing_mm`` is (slice, row, col). Each new slice's mask is checked against the previous slice's size
    and position; the first that fails, or where the lesion no longer shows, ends that direction. To
    re-propagate from a corrected slice, call again with the corrected mask as ``seed_mask``.
    """
    array = check_image(volume, 3, "volume")
    spacing = check_spacing(spacing_mm, 3, "spacing_mm")
    if not 0 <= seed_slice < array.shape[0]:
        raise ValueError(f"seed_slice {seed_slice} is outside the volume's {array.shape[0]} slices")
    seed = np.asarray(seed_mask, dtype=bool)
    if seed.shape != array.shape[1:]:
        raise ValueError(f"seed_mask has shape {seed.shape}, the volume's slices {array.shape[1:]}")
    if not seed.any():
        raise ValueError("seed_mask is empty")
    in_plane = (spacing[1], spacing[2])
    levels = _levels(array[seed_slice], seed, in_plane)
    # Darker or brighter than its surroundings is the lesion's, read on the seed slice: a slice where the
    # organ on the lesion's far side dominates the rim (fat on one side, muscle on the other) must not flip it.
    side = 1.0 if levels[1] >= levels[0] else -1.0
    noise = _local_noise(array[seed_slice], seed, in_plane)
    seed_axes = recist_axes(seed, in_plane)
    long_mm = max(seed_axes.long_axis_mm, min(in_plane))
    work_mm = max(min(in_plane) / 3.0, long_mm / WORK_PIXELS_PER_LINE)
    rows, cols = np.nonzero(seed)
    centre = (float(cols.mean()), float(rows.mean()))
    masks = {seed_slice: seed}
    stopped: dict[str, str] = {}
    for name, direction in (("up", 1), ("down", -1)):
        previous, index, reason = seed, seed_slice + direction, "end of the volume"
        current, peak_area = levels, int(seed.sum())
        while 0 <= index < array.shape[0]:
            depth = abs(index - seed_slice) * spacing[0] / (BOUND_DEPTH_PER_LONG_AXIS * long_mm)
            if depth >= 1.0:
                reason = "depth bound reached"
                break
            radius_mm = BOUND_RADIUS_PER_LONG_AXIS * long_mm * math.sqrt(1.0 - depth**2)
            mask, why = _next_slice(
                image=array[index],
                previous=previous,
                spacing=in_plane,
                thickness_mm=spacing[0],
                levels=current,
                side=side,
                noise=noise,
                work_mm=work_mm,
                segmenter=segmenter,
            )
            if mask is not None:
                mask &= _disc(mask.shape, in_plane, centre, radius_mm)
                area, previous_area = int(mask.sum()), int(previous.sum())
                if area * min(in_plane) ** 2 < MIN_AREA_MM2:
                    mask, why = None, "lesion ended: too small"
                elif previous_area < TAIL_FRACTION * peak_area and area > TAIL_SHRINK * previous_area:
                    mask, why = None, "lesion ended: stopped narrowing (a vessel or organ runs on)"
            if mask is None:
                reason = why
                break
            masks[index] = mask
            peak_area = max(peak_area, int(mask.sum()))
            current = _follow_levels(current, _levels(array[index], mask, in_plane), side=side)
            previous, index = mask, index + direction
        stopped[name] = reason
    return _finish(masks, seed_slice=seed_slice, spacing=spacing, stopped=stopped, segmenter=segmenter)


def _finish(
    masks: dict[int, np.ndarray],
    *,
    seed_slice: int,
    spacing: tuple[float, ...],
    stopped: dict[str, str],
    segmenter: Segmenter,
) -> VolumeProposal:
    ordered = dict(sorted(masks.items()))
    areas = {index: int(mask.sum()) for index, mask in ordered.items()}
    largest = max(areas, key=lambda index: areas[index])
    return VolumeProposal(
        masks=ordered,
        seed_slice=seed_slice,
        largest_slice=largest,
        axes=recist_axes(ordered[largest], (spacing[1], spacing[2])),
        volume_mm3=float(sum(areas.values())) * spacing[0] * spacing[1] * spacing[2],
        stopped=stopped,
        algorithm=segmenter.name,
        algorithm_version=ALGORITHM_VERSION,
    )


def propose_from_tap(
    *,
    volume: np.ndarray,
    spacing_mm: tuple[float, float, float],
    slice_index: int,
    point: Point,
    is_ct: bool = True,
    segmenter: Segmenter = DEFAULT_SEGMENTER,
) -> VolumeProposal:
    """Propose a lesion's 3D mask and RECIST axes from one tap at ``point`` (col, row) on ``slice_index``.

    Tries lesion sizes from small to large (`TAP_SIZES_MM`), seeded by a small disc at the tap, and keeps
    the first whose mask stays clear of its bound; re-segments seeded by that mask's long axis as a reader's
    line would be, then propagates. Raises `NoLesionFound` when no size gives a lesion.
    """
    array = check_image(volume, 3, "volume")
    spacing = check_spacing(spacing_mm, 3, "spacing_mm")
    if not 0 <= slice_index < array.shape[0]:
        raise ValueError(f"slice_index {slice_index} is outside the volume's {array.shape[0]} slices")
    if len(point) != 2 or not all(np.isfinite(v) for v in point):
        raise ValueError(f"point must be a (col, row) pair of finite numbers, got {point!r}")
    col, row = float(point[0]), float(point[1])
    image = array[slice_index]
    if not (0 <= col <= image.shape[1] - 1 and 0 <= row <= image.shape[0] - 1):
        raise ValueError(f"point {point!r} lies outside the slice of shape {image.shape} (rows, cols)")
    in_plane = (spacing[1], spacing[2])
    seed_disc = _disc(image.shape, in_plane, (col, row), TAP_SEED_RADIUS_MM)
    if is_ct:
        seed_hu = float(np.median(image[seed_disc]))
        if seed_hu < CT_MIN_SEED_HU:
            raise NoLesionFound(f"the tap is on air or fat (median {seed_hu:.0f} HU)")
        if seed_hu > CT_MAX_SEED_HU:
            raise NoLesionFound(f"the tap is on bone or contrast-filled vessel (median {seed_hu:.0f} HU)")
    rows, cols = np.nonzero(seed_disc)
    seed_points = np.column_stack([cols, rows]).astype(float)
    # The lesion's size is unknown: each candidate size gives a mask, refined as if a reader had drawn its
    # long axis (seeds along a line fit a lesion better than a dot); keep the one whose rim steps farthest
    # from it (an undersized mask's rim is still lesion, an oversized one holds its surroundings).
    found = None
    for size_mm in TAP_SIZES_MM:
        try:
            proposal = _propose(
                image=image,
                spacing=in_plane,
                centre=(col, row),
                extent_mm=size_mm,
                lesion_points=seed_points,
                segmenter=segmenter,
                min_long_axis_mm=0.0,
            )
        except NoLesionFound:
            continue
        proposal = _refine(
            image=image,
            spacing=in_plane,
            tap=(col, row),
            proposal=proposal,
            seed_points=seed_points,
            segmenter=segmenter,
        )
        if found is None or proposal.contrast_snr > found.contrast_snr:
            found = proposal
    if found is None or found.contrast_snr < TAP_MIN_CONTRAST_SNR:
        raise NoLesionFound("nothing around the tap stands out from its surroundings")
    return propagate(
        volume=array, spacing_mm=spacing, seed_slice=slice_index, seed_mask=found.mask, segmenter=segmenter
    )


def _refine(
    *,
    image: np.ndarray,
    spacing: tuple[float, float],
    tap: Point,
    proposal,
    seed_points: np.ndarray,
    segmenter: Segmenter,
):
    """The proposal re-segmented seeded along its own long axis (`TAP_REFINEMENTS` times) while it holds the tap."""
    for _ in range(TAP_REFINEMENTS):
        axes = recist_axes(proposal.mask, spacing)
        if axes.long_axis_mm < 3.0:
            break
        try:
            refined = _propose(
                image=image,
                spacing=spacing,
                centre=((axes.long_start[0] + axes.long_end[0]) / 2, (axes.long_start[1] + axes.long_end[1]) / 2),
                extent_mm=axes.long_axis_mm,
                lesion_points=np.concatenate([seed_points, _axis_points(axes)]),
                segmenter=segmenter,
            )
        except NoLesionFound:
            break
        if not refined.mask[round(tap[1]), round(tap[0])]:
            break
        proposal = refined
    return proposal


def _axis_points(axes: Axes) -> np.ndarray:
    start, end = np.asarray(axes.long_start), np.asarray(axes.long_end)
    t = np.linspace(0.2, 0.8, 31)[:, None]
    return start + t * (end - start)
