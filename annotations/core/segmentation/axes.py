"""RECIST axes of a 2D lesion mask: the longest in-plane diameter and the longest diameter perpendicular to it.

Pure: a boolean mask and the pixel spacing in, an `Axes` dataclass out. Points are (col, row) pixel
coordinates, lengths in mm; anisotropic pixels are handled by measuring in mm. It never guesses: an empty
mask is a `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

Point = tuple[float, float]


@dataclass(frozen=True)
class Axes:
    """Long and short axis of a lesion on one slice: end points in (col, row) pixels, lengths in mm."""

    long_start: Point
    long_end: Point
    long_axis_mm: float
    short_start: Point
    short_end: Point
    short_axis_mm: float


def _check_spacing(pixel_spacing_mm: tuple[float, float]) -> tuple[float, float]:
    if len(pixel_spacing_mm) != 2 or not all(np.isfinite(s) and s > 0 for s in pixel_spacing_mm):
        raise ValueError(f"pixel_spacing_mm must be two positive numbers (row, col), got {pixel_spacing_mm!r}")
    return float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])


def recist_axes(mask: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> Axes:
    """Return the RECIST axes of ``mask`` (rows, cols): long = longest diameter, short = longest perpendicular to it.

    Diameters join pixel centres (a one-pixel lesion measures 0 mm). The long axis's end points are pixel
    centres of the mask; the short axis is measured on chords exactly perpendicular to the long axis, one per
    half pixel along it, so its end points are in fractional pixels.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D (rows, cols), got shape {mask.shape}")
    row_mm, col_mm = _check_spacing(pixel_spacing_mm)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("mask is empty: a lesion needs at least one pixel")
    points_mm = np.column_stack([cols * col_mm, rows * row_mm]).astype(float)
    candidates = points_mm
    if len(points_mm) >= 3:
        try:
            candidates = points_mm[ConvexHull(points_mm).vertices]
        except QhullError:  # all pixels on one line: every point is a candidate
            candidates = points_mm
    deltas = candidates[:, None, :] - candidates[None, :, :]
    squared = np.einsum("ijk,ijk->ij", deltas, deltas)
    i, j = np.unravel_index(int(np.argmax(squared)), squared.shape)
    long_axis_mm = float(np.sqrt(squared[i, j]))
    a_mm, b_mm = candidates[i], candidates[j]

    def to_pixels(point_mm: np.ndarray) -> Point:
        return (float(point_mm[0] / col_mm), float(point_mm[1] / row_mm))

    if long_axis_mm == 0.0:
        centre = to_pixels(a_mm)
        return Axes(centre, centre, 0.0, centre, centre, 0.0)
    along = (b_mm - a_mm) / long_axis_mm
    across = np.array([-along[1], along[0]])
    u = (points_mm - a_mm) @ along
    v = (points_mm - a_mm) @ across
    # Chords perpendicular to the long axis: pixels grouped by their position along it, half a pixel apart.
    step_mm = 0.5 * min(row_mm, col_mm)
    bins = np.round(u / step_mm).astype(np.int64)
    bins -= bins.min()
    lowest = np.full(bins.max() + 1, np.inf)
    highest = np.full(bins.max() + 1, -np.inf)
    np.minimum.at(lowest, bins, v)
    np.maximum.at(highest, bins, v)
    extent = np.where(np.isfinite(lowest), highest - lowest, -1.0)
    best = int(np.argmax(extent))
    short_axis_mm = float(max(extent[best], 0.0))
    u_best = best * step_mm + np.round(u.min() / step_mm) * step_mm
    short_start = a_mm + u_best * along + lowest[best] * across
    short_end = a_mm + u_best * along + highest[best] * across
    return Axes(
        long_start=to_pixels(a_mm),
        long_end=to_pixels(b_mm),
        long_axis_mm=long_axis_mm,
        short_start=to_pixels(short_start),
        short_end=to_pixels(short_end),
        short_axis_mm=short_axis_mm,
    )
