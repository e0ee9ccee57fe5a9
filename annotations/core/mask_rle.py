"""Run-length masks of the read format: encode, decode and validate one frame's bitmap.

A mask slice is a list of run lengths over the row-major `rows x columns` bitmap,
starting with a run of zeros (possibly 0) and alternating zeros and ones, summing
to exactly `rows * columns` (docs/read-format.md). This module is pure: it never
touches the database and never guesses a missing size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def validate_counts(counts: Sequence[int], *, rows: int, columns: int) -> None:
    """Raise ValueError naming the problem when counts are not a valid mask of rows x columns."""
    if rows <= 0 or columns <= 0:
        raise ValueError(f"mask size must be positive, got {rows} x {columns}")
    total = 0
    for position, count in enumerate(counts):
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
            raise ValueError(f"run {position} must be an integer, got {count!r}")
        if count < 0:
            raise ValueError(f"run {position} is negative ({count})")
        if count == 0 and position > 0:
            raise ValueError(f"run {position} is 0; only the first run (of zeros) may be empty")
        total += int(count)
    if total != rows * columns:
        raise ValueError(f"runs sum to {total}, expected rows x columns = {rows * columns}")


def encode(mask: np.ndarray) -> list[int]:
    """Return the run lengths of a 2-D boolean mask (row-major), starting with a run of zeros."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    flat = mask.astype(bool, copy=False).ravel()
    if flat.size == 0:
        return [0]
    # Positions where the value changes, bracketed by the ends, give the run boundaries.
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    boundaries = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(boundaries).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(run) for run in runs]


def decode(counts: Sequence[int], *, rows: int, columns: int) -> np.ndarray:
    """Return the rows x columns boolean mask described by counts (validated first)."""
    validate_counts(counts, rows=rows, columns=columns)
    runs = np.asarray(counts, dtype=np.int64)
    values = np.zeros(runs.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(rows, columns)


def foreground_indices(counts: Sequence[int], *, rows: int, columns: int) -> np.ndarray:
    """Return the sorted flat (row-major) indices of the mask's pixels, without building the bitmap."""
    validate_counts(counts, rows=rows, columns=columns)
    runs = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(runs)
    starts = ends - runs
    one_starts, one_ends = starts[1::2], ends[1::2]
    if one_starts.size == 0:
        return np.empty(0, dtype=np.int64)
    lengths = one_ends - one_starts
    # Each run of ones contributes start, start+1, ...: a ramp reset at every run.
    offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(one_starts, lengths) + offsets


def pixel_count(counts: Sequence[int]) -> int:
    """Return the number of foreground pixels (the sum of the runs of ones)."""
    return int(sum(int(c) for c in list(counts)[1::2]))


def encode_indices(indices: np.ndarray, *, rows: int, columns: int) -> list[int]:
    """Return run lengths for a mask given as flat foreground indices of a rows x columns frame."""
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    total = rows * columns
    if indices.size and (indices[0] < 0 or indices[-1] >= total):
        raise ValueError(f"pixel index out of range 0..{total - 1}")
    if indices.size == 0:
        return [total]
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    run_starts = indices[np.concatenate(([0], breaks))]
    run_ends = indices[np.concatenate((breaks - 1, [indices.size - 1]))] + 1
    runs: list[int] = []
    cursor = 0
    for start, end in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        runs.append(start - cursor)
        runs.append(end - start)
        cursor = end
    if cursor < total:
        runs.append(total - cursor)
    return runs
