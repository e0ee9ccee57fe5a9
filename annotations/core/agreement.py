"""Agreement statistics between readers: ICC, Bland-Altman, Dice and Fleiss' kappa.

Formulas follow the published definitions: ICC(A,1) of McGraw and Wong (1996),
which is Shrout and Fleiss' ICC(2,1), with its F-based 95% confidence interval;
Bland and Altman (1986) bias and 95% limits of agreement; the Dice coefficient;
Fleiss' kappa (1971). Pure: arrays in, dataclasses out, never the database.
Missing values are the caller's business; these functions reject them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class IntraclassCorrelation:
    """ICC(A,1): two-way random effects, absolute agreement, single rater."""

    icc: float
    ci95_low: float
    ci95_high: float
    f_value: float
    df1: int
    df2: int
    p_value: float
    n_targets: int
    n_raters: int

    def as_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()}


def icc_absolute_agreement(ratings: np.ndarray, *, confidence: float = 0.95) -> IntraclassCorrelation:
    """Return ICC(A,1) of an n targets x k raters matrix of ratings with its confidence interval."""
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"ratings must be a targets x raters matrix, got shape {x.shape}")
    n, k = x.shape
    if n < 2 or k < 2:
        raise ValueError(f"ICC needs at least 2 targets and 2 raters, got {n} x {k}")
    if not np.all(np.isfinite(x)):
        raise ValueError("ratings contain missing or non-finite values")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_total = ((x - grand) ** 2).sum()
    ss_error = ss_total - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    icc = (ms_rows - ms_error) / denominator if denominator > 0 else float("nan")
    f_value = ms_rows / ms_error if ms_error > 0 else float("inf")
    df1, df2 = n - 1, (n - 1) * (k - 1)
    p_value = float(stats.f.sf(f_value, df1, df2)) if np.isfinite(f_value) else 0.0
    alpha = 1.0 - confidence
    low = high = float("nan")
    if np.isfinite(icc) and ms_error > 0 and icc < 1:
        # McGraw and Wong (1996), case 2A: Satterthwaite degrees of freedom for the denominator.
        a = k * icc / (n * (1 - icc))
        b = 1 + k * icc * (n - 1) / (n * (1 - icc))
        v = (a * ms_cols + b * ms_error) ** 2 / ((a * ms_cols) ** 2 / (k - 1) + (b * ms_error) ** 2 / df2)
        f_low = stats.f.ppf(1 - alpha / 2, df1, v)
        f_high = stats.f.ppf(1 - alpha / 2, v, df1)
        spread = k * ms_cols + (k * n - k - n) * ms_error
        low = n * (ms_rows - f_low * ms_error) / (f_low * spread + n * ms_rows)
        high = n * (f_high * ms_rows - ms_error) / (spread + n * f_high * ms_rows)
    return IntraclassCorrelation(
        icc=float(icc),
        ci95_low=float(low),
        ci95_high=float(high),
        f_value=float(f_value),
        df1=df1,
        df2=df2,
        p_value=p_value,
        n_targets=n,
        n_raters=k,
    )


def largest_complete_block(ratings: np.ndarray, *, min_targets: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Return (row indices, column indices) of a large complete sub-matrix of a ratings matrix with NaN gaps.

    Crowd reads are not fully crossed, but ICC(A,1) needs every rater on every
    target. Columns are dropped one at a time, the one with the most gaps first,
    and the block with the most cells (at least 2 raters, min_targets targets) wins.
    """
    x = np.asarray(ratings, dtype=float)
    columns = list(range(x.shape[1]))
    best: tuple[int, np.ndarray, np.ndarray] = (0, np.empty(0, dtype=int), np.empty(0, dtype=int))
    while len(columns) >= 2:
        present = np.isfinite(x[:, columns])
        rows = np.flatnonzero(present.all(axis=1))
        cells = rows.size * len(columns)
        if rows.size >= min_targets and cells > best[0]:
            best = (cells, rows, np.array(columns))
        # Drop the column with the most gaps; the lowest index first on ties, so the result is reproducible.
        gaps = (~present).sum(axis=0)
        columns.pop(int(np.argmax(gaps)) if gaps.max() > 0 else len(columns) - 1)
    return best[1], best[2]


@dataclass(frozen=True)
class BlandAltman:
    """Mean difference (method minus reference) and 95% limits of agreement."""

    n: int
    bias: float
    sd: float | None
    lower_limit: float | None
    upper_limit: float | None

    def as_json(self) -> dict:
        return dict(self.__dict__)


def bland_altman(measured: Sequence[float], reference: Sequence[float]) -> BlandAltman:
    """Return bias and limits of agreement (bias ± 1.96 SD of the differences) of paired measurements."""
    a = np.asarray(measured, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equally long 1-D series, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("Bland-Altman needs at least one pair")
    diff = a - b
    bias = float(diff.mean())
    if a.size < 2:
        return BlandAltman(n=1, bias=bias, sd=None, lower_limit=None, upper_limit=None)
    sd = float(diff.std(ddof=1))
    return BlandAltman(n=int(a.size), bias=bias, sd=sd, lower_limit=bias - 1.96 * sd, upper_limit=bias + 1.96 * sd)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Dice coefficient of two masks given as sorted unique voxel indices (or boolean arrays).

    Two empty masks agree perfectly (1.0).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype == bool or b.dtype == bool:
        if a.shape != b.shape:
            raise ValueError(f"boolean masks differ in shape: {a.shape} and {b.shape}")
        total = int(a.sum()) + int(b.sum())
        return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
    total = a.size + b.size
    if total == 0:
        return 1.0
    return 2.0 * np.intersect1d(a, b, assume_unique=True).size / total


def mean_pairwise_dice(masks: Sequence[np.ndarray]) -> float | None:
    """Return the mean Dice over all pairs of masks, or None with fewer than two."""
    pairs = [dice(a, b) for a, b in itertools.combinations(masks, 2)]
    return float(np.mean(pairs)) if pairs else None


@dataclass(frozen=True)
class FleissKappa:
    kappa: float
    observed_agreement: float
    expected_agreement: float
    n_subjects: int
    n_raters: int


def fleiss_kappa(table: np.ndarray) -> FleissKappa:
    """Return Fleiss' kappa of a subjects x categories table of counts, each row summing to the same n raters."""
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] < 1 or counts.shape[1] < 2:
        raise ValueError(f"need a subjects x categories table with at least 2 categories, got {counts.shape}")
    if np.any(counts < 0):
        raise ValueError("counts must not be negative")
    raters = counts.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError(f"every subject needs the same number (>= 2) of ratings, got {sorted(set(raters.tolist()))}")
    n = raters[0]
    n_subjects = counts.shape[0]
    proportions = counts.sum(axis=0) / (n_subjects * n)
    per_subject = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    observed = float(per_subject.mean())
    expected = float((proportions**2).sum())
    kappa = (observed - expected) / (1 - expected) if expected < 1 else float("nan")
    return FleissKappa(
        kappa=float(kappa),
        observed_agreement=observed,
        expected_agreement=expected,
        n_subjects=n_subjects,
        n_raters=int(n),
    )


def leave_one_out_deviations(
    lesion_lengths: Sequence[dict[int, float]], *, min_others: int = 2
) -> dict[int, list[float]]:
    """Return, per reader, their length minus the median of the other readers' lengths, lesion by lesion.

    A reader's own length never enters the reference it is compared with, so a reader who
    is often the median does not look better than they are. Lesions where fewer than
    `min_others` other readers measured are left out.
    """
    if min_others < 1:
        raise ValueError(f"min_others must be at least 1, got {min_others}")
    deviations: dict[int, list[float]] = {}
    for lengths in lesion_lengths:
        if len(lengths) < min_others + 1:
            continue
        for reader_id, length in lengths.items():
            others = [value for other, value in lengths.items() if other != reader_id]
            deviations.setdefault(reader_id, []).append(float(length) - float(np.median(others)))
    return deviations
