"""RECIST line consensus: the medoid line of a lesion's readers and the spread of their lengths.

The consensus long (or short) axis is the drawn line whose end points are closest
in total to everyone else's, each pair of lines compared in the end-point
orientation that minimises the distance, so the answer always lies on a real
slice a reader chose. Lengths are summarised by median, interquartile range and
coefficient of variation; with reader weights the medoid and the median are
weighted. Pure: arrays and dataclasses in and out, never the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DrawnLine:
    """One reader's line: image end points on one frame plus the same end points in patient mm."""

    reader_id: int
    sop_instance_uid: str
    frame: int
    start: tuple[float, float]
    end: tuple[float, float]
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    length_mm: float
    read_id: int | None = None

    @property
    def midpoint_mm(self) -> np.ndarray:
        return (np.asarray(self.start_mm, dtype=float) + np.asarray(self.end_mm, dtype=float)) / 2.0

    def as_json(self) -> dict:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "start": [float(self.start[0]), float(self.start[1])],
            "end": [float(self.end[0]), float(self.end[1])],
            "length_mm": round(float(self.length_mm), 3),
            "reader_id": self.reader_id,
        }


@dataclass(frozen=True)
class LineConsensus:
    """The medoid line and the length statistics of one lesion's lines."""

    medoid: DrawnLine
    medoid_cost_mm: float
    n_lines: int
    median_mm: float
    iqr_mm: float
    cv: float | None
    lengths_mm: dict[int, float] = field(default_factory=dict)


def end_point_distance_mm(a: DrawnLine, b: DrawnLine) -> float:
    """Return the summed distance of matched end points, in whichever orientation is smaller."""
    a0, a1 = np.asarray(a.start_mm, dtype=float), np.asarray(a.end_mm, dtype=float)
    b0, b1 = np.asarray(b.start_mm, dtype=float), np.asarray(b.end_mm, dtype=float)
    same = np.linalg.norm(a0 - b0) + np.linalg.norm(a1 - b1)
    swapped = np.linalg.norm(a0 - b1) + np.linalg.norm(a1 - b0)
    return float(min(same, swapped))


def distance_matrix_mm(lines: Sequence[DrawnLine]) -> np.ndarray:
    """Return the symmetric matrix of end-point distances between lines."""
    starts = np.array([line.start_mm for line in lines], dtype=float)
    ends = np.array([line.end_mm for line in lines], dtype=float)

    def pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x[:, None, :] - y[None, :, :], axis=2)

    same = pairwise(starts, starts) + pairwise(ends, ends)
    swapped = pairwise(starts, ends) + pairwise(ends, starts)
    return np.minimum(same, swapped)


def weighted_quantile(values: Sequence[float], quantile: float, weights: Sequence[float] | None = None) -> float:
    """Return the quantile of values; with weights, of the weighted distribution (interpolated like numpy's default)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to take a quantile of")
    if weights is None or np.allclose(weights, weights[0]):
        return float(np.quantile(x, quantile))
    w = np.asarray(weights, dtype=float)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(w)}")
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    # Midpoint rule on the cumulative weights; equal weights reduce to the "hazen" quantile.
    cumulative = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(quantile, cumulative, x))


def line_consensus(lines: Sequence[DrawnLine], *, weights: Sequence[float] | None = None) -> LineConsensus:
    """Return the (weighted) medoid line of a lesion and its length statistics.

    Ties in the medoid cost are broken by the smaller reader id, so the answer
    never depends on the order the lines arrive in.
    """
    if not lines:
        raise ValueError("line consensus needs at least one line")
    if weights is not None and len(weights) != len(lines):
        raise ValueError(f"got {len(weights)} weights for {len(lines)} lines")
    w = np.ones(len(lines)) if weights is None else np.asarray(weights, dtype=float)
    distances = distance_matrix_mm(lines)
    cost = distances @ w
    # Round so that floating-point noise from a different summation order cannot flip the choice.
    rounded = np.round(cost, 9)
    best = min(range(len(lines)), key=lambda i: (rounded[i], lines[i].reader_id, lines[i].sop_instance_uid))
    lengths = np.array([line.length_mm for line in lines], dtype=float)
    median = weighted_quantile(lengths, 0.5, None if weights is None else w)
    q1 = weighted_quantile(lengths, 0.25, None if weights is None else w)
    q3 = weighted_quantile(lengths, 0.75, None if weights is None else w)
    mean = float(lengths.mean())
    cv = float(lengths.std(ddof=1) / mean) if lengths.size >= 2 and mean > 0 else None
    return LineConsensus(
        medoid=lines[best],
        medoid_cost_mm=float(cost[best]),
        n_lines=len(lines),
        median_mm=median,
        iqr_mm=q3 - q1,
        cv=cv,
        lengths_mm={line.reader_id: float(line.length_mm) for line in lines},
    )
