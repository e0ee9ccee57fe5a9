"""RECIST line consensus: a lesion's consensus line and the spread of its readers' lengths.

The medoid is the drawn line whose end points are closest in total to everyone
else's, each pair of lines compared in the end-point orientation that minimises
the distance; it chooses the slice. The exported consensus line
(`median_length_line`) is rebuilt on that slice: centred on the median of the
readers' midpoints, along their mean direction, with the median length, so the
line researchers download is exactly as long as the consensus length (a single
reader's line, the medoid, was measurably worse; see docs/consensus.md).
Lengths are summarised by median, interquartile range and coefficient of
variation; with reader weights the medoid, the centre, the direction and the
median are weighted. Pure: arrays and dataclasses in and out, never the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from annotations.core.geometry import FrameGeometry


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
    # How the line was made: "" for a reader's own line, "median_length_line" for a rebuilt consensus line.
    construction: str = ""

    @classmethod
    def on_frame(
        cls,
        frame: FrameGeometry,
        *,
        start: tuple[float, float],
        end: tuple[float, float],
        reader_id: int,
        read_id: int | None = None,
        construction: str = "",
    ) -> DrawnLine:
        """Return the line between two image points of a frame, placed in patient space.

        The length is recomputed from the frame's geometry rather than trusting the page's figure.
        """
        return cls(
            reader_id=reader_id,
            read_id=read_id,
            sop_instance_uid=frame.sop_instance_uid,
            frame=frame.frame,
            start=start,
            end=end,
            start_mm=tuple(float(v) for v in frame.to_patient_mm(*start)),
            end_mm=tuple(float(v) for v in frame.to_patient_mm(*end)),
            length_mm=frame.line_length_mm(start, end),
            construction=construction,
        )

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
            **({"construction": self.construction} if self.construction else {}),
        }


@dataclass(frozen=True)
class LineConsensus:
    """The medoid line and the length statistics of one lesion's lines."""

    medoid: DrawnLine
    medoid_cost_mm: float
    # The exported consensus line: the medoid itself, or rebuilt with the median length (median_length_line).
    line: DrawnLine
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


def line_consensus(
    lines: Sequence[DrawnLine],
    *,
    weights: Sequence[float] | None = None,
    frames: dict[tuple[str, int], FrameGeometry] | None = None,
) -> LineConsensus:
    """Return the (weighted) medoid line of a lesion, its consensus line and its length statistics.

    Ties in the medoid cost are broken by the smaller reader id, so the answer
    never depends on the order the lines arrive in. With `frames` (keyed by
    (SOP Instance UID, frame)) holding the medoid's frame, the consensus line is
    rebuilt by median_length_line; without, it is the medoid.
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
    medoid = lines[best]
    frame = (frames or {}).get((medoid.sop_instance_uid, medoid.frame))
    consensus = medoid
    if frame is not None and len(lines) >= 2:
        consensus = median_length_line(lines, reference=medoid, frame=frame, length_mm=median, weights=weights)
    return LineConsensus(
        medoid=medoid,
        medoid_cost_mm=float(cost[best]),
        line=consensus,
        n_lines=len(lines),
        median_mm=median,
        iqr_mm=q3 - q1,
        cv=cv,
        lengths_mm={line.reader_id: float(line.length_mm) for line in lines},
    )


def _oriented(line: DrawnLine, reference: DrawnLine) -> tuple[np.ndarray, np.ndarray]:
    """Return the line's end points in mm, swapped if that matches the reference's end points better."""
    start, end = np.asarray(line.start_mm, dtype=float), np.asarray(line.end_mm, dtype=float)
    r0, r1 = np.asarray(reference.start_mm, dtype=float), np.asarray(reference.end_mm, dtype=float)
    same = np.linalg.norm(start - r0) + np.linalg.norm(end - r1)
    swapped = np.linalg.norm(start - r1) + np.linalg.norm(end - r0)
    return (end, start) if swapped < same else (start, end)


def weighted_median_point(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return the coordinate-wise (weighted) median of points (n x 3)."""
    return np.array([weighted_quantile(points[:, axis], 0.5, weights) for axis in range(points.shape[1])])


def median_length_line(
    lines: Sequence[DrawnLine],
    *,
    reference: DrawnLine,
    frame: FrameGeometry,
    length_mm: float,
    weights: Sequence[float] | None = None,
) -> DrawnLine:
    """Return the consensus line rebuilt on the reference's frame: median centre, mean direction, given length.

    Every line is first put in the end-point orientation nearest the reference's.
    The centre is the coordinate-wise (weighted) median of the midpoints, the
    direction the (weighted) mean of the unit directions, both projected into
    the reference frame's plane; the end points lie length_mm / 2 either side of
    the centre. A reader on a neighbouring slice thus moves the centre in-plane
    only. End points are clipped to the image, which can only shorten the line;
    its length is recomputed from the frame.
    """
    if not lines:
        raise ValueError("a consensus line needs at least one line")
    if not length_mm > 0:
        raise ValueError(f"length_mm must be positive, got {length_mm}")
    w = np.ones(len(lines)) if weights is None else np.asarray(weights, dtype=float)
    oriented = [_oriented(line, reference) for line in lines]
    midpoints = np.array([(start + end) / 2.0 for start, end in oriented])
    directions = np.array([end - start for start, end in oriented])
    norms = np.linalg.norm(directions, axis=1)
    keep = norms > 0
    row_cosine = np.asarray(frame.row_cosine, dtype=float)
    column_cosine = np.asarray(frame.column_cosine, dtype=float)
    direction = (directions[keep] / norms[keep, None] * w[keep, None]).sum(axis=0)
    # In-plane components (mm along columns, mm along rows); a degenerate mean falls back to the reference.
    along = np.array([direction @ row_cosine, direction @ column_cosine])
    if np.linalg.norm(along) < 1e-9:
        ref = np.asarray(reference.end_mm, dtype=float) - np.asarray(reference.start_mm, dtype=float)
        along = np.array([ref @ row_cosine, ref @ column_cosine])
    along = along / np.linalg.norm(along)
    origin = np.asarray(frame.position_mm, dtype=float)
    centre = weighted_median_point(midpoints, w) - origin
    row_spacing, column_spacing = frame.pixel_spacing_mm
    centre_image = np.array([centre @ row_cosine / column_spacing, centre @ column_cosine / row_spacing])
    half = along * (length_mm / 2.0) / np.array([column_spacing, row_spacing])
    limits = np.array([frame.columns - 1.0, frame.rows - 1.0])
    start = tuple(float(v) for v in np.clip(centre_image - half, 0.0, limits))
    end = tuple(float(v) for v in np.clip(centre_image + half, 0.0, limits))
    return DrawnLine.on_frame(
        frame, start=start, end=end, reader_id=reference.reader_id, construction="median_length_line"
    )
