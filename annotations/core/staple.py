"""Binary STAPLE (Warfield, Zou and Wells, IEEE TMI 2004) over reader-decision patterns, and majority voting.

Every voxel with the same pattern of reader votes has the same posterior, so the
EM iterations run over the histogram of distinct patterns (at most 2^R of them)
instead of over the voxels. The algorithm follows ITK's STAPLEImageFilter (the
engine of SimpleITK's) step for step so that results agree with it: the initial
estimate W is the mean vote, the prior g_t is the mean of W over the whole volume
times ConfidenceWeight and stays fixed, each iteration first re-estimates every
reader's sensitivity p and specificity q from W and then W from p, q and g_t, and
iteration stops once every (p - p_prev)^2 and (q - q_prev)^2 is at most 1e-14
(never on the first iteration) or after `maximum_iterations`. The thresholded
label is `posterior > 0.5`. Pure numpy; it never touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# ITK's convergence test: squared change of every p and q at most this.
CONVERGENCE_SQUARED_CHANGE = 1.0e-14
# ITK's default (unsigned int max): iterate until convergence.
UNLIMITED_ITERATIONS = 4294967295
LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class StapleResult:
    """STAPLE estimates. `posterior` has the input's shape (or is per pattern for `staple_patterns`)."""

    posterior: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    prior: float
    iterations: int

    @property
    def label(self) -> np.ndarray:
        """The consensus mask: voxels whose posterior exceeds 0.5."""
        return self.posterior > LABEL_THRESHOLD


@dataclass(frozen=True)
class DecisionHistogram:
    """Distinct vote patterns (patterns x readers, bool) and how many voxels show each.

    Pattern 0 (nobody voted) always comes first. Only voxels somebody voted for
    are kept (`voted_voxels`, flat indices, with `voted_pattern` their pattern
    row), so masks of small lesions in a large volume cost little.
    """

    patterns: np.ndarray
    counts: np.ndarray
    shape: tuple[int, ...]
    voted_voxels: np.ndarray
    voted_pattern: np.ndarray

    def to_voxels(self, values: np.ndarray) -> np.ndarray:
        """Return the per-voxel array (the masks' shape) of a per-pattern array of values."""
        values = np.asarray(values)
        volume = np.full(self.shape, values[0], dtype=values.dtype)
        volume.reshape(-1)[self.voted_voxels] = values[self.voted_pattern]
        return volume


def _votes(mask: np.ndarray) -> np.ndarray:
    """Return the sorted flat indices where a mask votes foreground (value 1, ITK's default ForegroundValue)."""
    flat = np.ascontiguousarray(mask).reshape(-1)
    if flat.dtype == bool:
        flat = flat.view(np.uint8)
    if flat.itemsize == 1 and flat.size % 8 == 0:
        # Scan 8 voxels per machine word: lesion masks are mostly zeros, so few words survive.
        words = np.flatnonzero(flat.view(np.uint64))
        candidates = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    else:
        candidates = np.flatnonzero(flat)
    return candidates[flat[candidates] == 1]


def decision_histogram(masks: Sequence[np.ndarray]) -> DecisionHistogram:
    """Return the histogram of reader-decision patterns of equally shaped binary masks."""
    if len(masks) == 0:
        raise ValueError("STAPLE needs at least one reader's mask")
    shape = tuple(np.shape(masks[0]))
    for position, mask in enumerate(masks):
        if np.shape(mask) != shape:
            raise ValueError(f"mask {position} has shape {np.shape(mask)}, expected {shape}")
    n_readers = len(masks)
    if n_readers > 62:
        raise ValueError(f"at most 62 readers per STAPLE run, got {n_readers}")
    votes = [_votes(mask) for mask in masks]
    every_vote = np.concatenate(votes)
    reader_bit = np.repeat((np.uint64(1) << np.arange(n_readers, dtype=np.uint64)), [v.size for v in votes])
    # One sort puts each voxel's votes side by side; OR-ing them gives the voxel's pattern code.
    order = np.argsort(every_vote, kind="stable")
    every_vote, reader_bit = every_vote[order], reader_bit[order]
    starts = np.flatnonzero(np.concatenate(([True], every_vote[1:] != every_vote[:-1]))) if every_vote.size else order
    voted = every_vote[starts]
    codes = np.bitwise_or.reduceat(reader_bit, starts) if starts.size else np.empty(0, dtype=np.uint64)
    if n_readers <= 16:
        histogram = np.bincount(codes.astype(np.int64), minlength=1 << n_readers)
        pattern_codes = np.flatnonzero(histogram[1:]).astype(np.uint64) + np.uint64(1)
        counts = histogram[pattern_codes.astype(np.int64)]
        table = np.zeros(1 << n_readers, dtype=np.int64)
        table[pattern_codes.astype(np.int64)] = np.arange(pattern_codes.size)
        voted_pattern = table[codes.astype(np.int64)]
    else:
        pattern_codes, voted_pattern, counts = np.unique(codes, return_inverse=True, return_counts=True)
    # Prepend the all-zero pattern (never among the voted voxels) with the count of untouched voxels.
    n_voxels = int(np.prod(shape, dtype=np.int64))
    pattern_codes = np.concatenate(([np.uint64(0)], pattern_codes))
    counts = np.concatenate(([n_voxels - voted.size], counts)).astype(np.float64)
    bits = (pattern_codes[:, None] >> np.arange(n_readers, dtype=np.uint64)[None, :]) & np.uint64(1)
    return DecisionHistogram(
        patterns=bits.astype(bool),
        counts=counts,
        shape=shape,
        voted_voxels=voted,
        voted_pattern=voted_pattern.reshape(-1) + 1,
    )


def staple_patterns(
    patterns: np.ndarray,
    counts: np.ndarray,
    *,
    confidence_weight: float = 1.0,
    maximum_iterations: int = UNLIMITED_ITERATIONS,
) -> StapleResult:
    """Run STAPLE on a pattern histogram; `posterior` is returned per pattern.

    `patterns` is (K patterns x R readers) of 0/1, `counts` the number of voxels
    (may be fractional weights) showing each pattern; the all-zero pattern must be
    included with the count of background voxels, since the prior depends on it.
    """
    votes = np.asarray(patterns, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if votes.ndim != 2 or counts.shape != (votes.shape[0],):
        raise ValueError(f"patterns must be K x R and counts K, got {votes.shape} and {counts.shape}")
    if np.any(counts < 0):
        raise ValueError("pattern counts must not be negative")
    if maximum_iterations < 1:
        raise ValueError(f"maximum_iterations must be at least 1, got {maximum_iterations}")
    n_readers = votes.shape[1]
    n_voxels = float(counts.sum())
    if n_voxels <= 0:
        raise ValueError("STAPLE needs at least one voxel")
    absent = 1.0 - votes
    weight = votes.sum(axis=1) / n_readers
    prior = float((weight * counts).sum() / n_voxels) * confidence_weight
    last_p = np.full(n_readers, -10.0)
    last_q = np.full(n_readers, -10.0)
    p = q = last_p
    iteration = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while iteration < maximum_iterations:
            present_mass = weight * counts
            absent_mass = (1.0 - weight) * counts
            p = (present_mass @ votes) / present_mass.sum()
            q = (absent_mass @ absent) / absent_mass.sum()
            # Products over readers of p or (1 - p) per pattern, as ITK multiplies them voxel by voxel.
            alpha = np.prod(np.where(votes > 0, p[None, :], 1.0 - p[None, :]), axis=1)
            beta = np.prod(np.where(votes > 0, 1.0 - q[None, :], q[None, :]), axis=1)
            weight = prior * alpha / (prior * alpha + (1.0 - prior) * beta)
            converged = iteration != 0 and bool(
                np.all((p - last_p) ** 2 <= CONVERGENCE_SQUARED_CHANGE)
                and np.all((q - last_q) ** 2 <= CONVERGENCE_SQUARED_CHANGE)
            )
            last_p, last_q = p, q
            if converged:
                break
            iteration += 1
    return StapleResult(posterior=weight, sensitivity=p, specificity=q, prior=prior, iterations=iteration)


def staple(
    masks: Sequence[np.ndarray],
    *,
    confidence_weight: float = 1.0,
    maximum_iterations: int = UNLIMITED_ITERATIONS,
) -> StapleResult:
    """Run STAPLE on equally shaped binary masks (one per reader) and return the posterior volume."""
    histogram = decision_histogram(masks)
    result = staple_patterns(
        histogram.patterns,
        histogram.counts,
        confidence_weight=confidence_weight,
        maximum_iterations=maximum_iterations,
    )
    return StapleResult(
        posterior=histogram.to_voxels(result.posterior),
        sensitivity=result.sensitivity,
        specificity=result.specificity,
        prior=result.prior,
        iterations=result.iterations,
    )


def majority_vote(masks: Sequence[np.ndarray], *, min_votes: int | None = None) -> np.ndarray:
    """Return voxels marked by at least min_votes readers (default: more than half of them)."""
    if len(masks) == 0:
        raise ValueError("majority voting needs at least one reader's mask")
    needed = len(masks) // 2 + 1 if min_votes is None else int(min_votes)
    if needed < 1:
        raise ValueError(f"min_votes must be at least 1, got {min_votes}")
    total = np.zeros(np.shape(masks[0]), dtype=np.uint8 if len(masks) < 256 else np.uint16)
    for mask in masks:
        votes = np.asarray(mask)
        np.add(total, 1, out=total, where=votes if votes.dtype == bool else votes == 1)
    return total >= needed
