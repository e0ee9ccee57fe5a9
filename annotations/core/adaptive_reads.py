"""Adaptive reads: how many more reads a case needs before its consensus is settled, and why.

A task with adaptive reads gives every case `min_reads` reads, then more, one
decision at a time and never beyond `max_reads`, only while the case's consensus
is uncertain (docs/consensus.md, "Adaptive reads"):

- **detection**: a lesion is settled when the readers who marked it and those who
  did not differ by at least `detection_margin` votes (so one more dissenting read
  cannot flip the majority); otherwise it needs the missing votes;
- **long axis**: the median of the readers' long axes of a lesion marked by at
  least two is still uncertain: its standard error (1.2533 * SD / sqrt(n), the
  large-sample error of a median) exceeds `max_median_error` of the median and
  `min_median_error_mm`. With reader reliability weights (learned without gold,
  1 for a typical reader) the SD and the n are weighted: two reliable readers who
  agree settle a lesion sooner than two unknown ones. It asks for the reads that
  would bring the error under the threshold at the spread seen so far, one or two
  at a time. Unlike the range, this shrinks as reads agree, so a case that once
  disagreed can still settle;
- **mask**: the lesion's masks overlap with mean pairwise Dice below `min_mask_dice`:
  one more read;
- **answers** (once tasks ask questions): agreement below `min_answer_agreement`: one more read.

The case needs the largest of these, capped at `max_reads`. Pure: dataclasses in and
out, never the database, never anything about who read the case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class AdaptiveRule:
    """The thresholds of the uncertainty rule; min_reads and max_reads come from the task."""

    min_reads: int = 2
    max_reads: int = 7
    detection_margin: int = 2
    # Tuned on the reader-study benchmark with another seed (23) than the one reported (19): docs/consensus.md.
    max_median_error: float = 0.05
    min_median_error_mm: float = 2.0
    min_mask_dice: float = 0.6
    min_answer_agreement: float = 0.7

    def __post_init__(self) -> None:
        if self.min_reads < 1:
            raise ValueError(f"min_reads must be at least 1, got {self.min_reads}")
        if self.max_reads < self.min_reads:
            raise ValueError(f"max_reads ({self.max_reads}) must not be below min_reads ({self.min_reads})")
        if self.detection_margin < 1:
            raise ValueError(f"detection_margin must be at least 1, got {self.detection_margin}")

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LesionEvidence:
    """What the rule looks at for one consensus lesion: its support and the readers' figures."""

    support: int
    long_axes_mm: Sequence[float] = ()
    mean_pairwise_dice: float | None = None
    # The measuring readers' reliability weights, in the order of long_axes_mm; empty: every reader weighs 1.
    reader_weights: Sequence[float] = ()


@dataclass(frozen=True)
class CaseEvidence:
    """A case's current reads as the rule sees them."""

    n_readers: int
    lesions: Sequence[LesionEvidence] = ()
    answer_agreement: float | None = None


@dataclass(frozen=True)
class ReadDecision:
    """How many more reads the case needs (0 when settled), its read target and the reasons, worst first."""

    more_reads: int
    target_reads: int
    reasons: list[str] = field(default_factory=list)
    at_maximum: bool = False

    @property
    def uncertain(self) -> bool:
        return self.more_reads > 0

    @property
    def message(self) -> str:
        """Return the sentence the console shows, e.g. "needs 2 more reads: long axes disagree by 22%"."""
        if self.more_reads:
            noun = "read" if self.more_reads == 1 else "reads"
            return f"needs {self.more_reads} more {noun}: {'; '.join(self.reasons)}"
        if self.at_maximum and self.reasons:
            return f"stopped at the maximum of {self.target_reads} reads, still uncertain: {'; '.join(self.reasons)}"
        return "settled: readers agree"

    def as_json(self) -> dict:
        return {
            "more_reads": self.more_reads,
            "target_reads": self.target_reads,
            "reasons": list(self.reasons),
            "at_maximum": self.at_maximum,
            "message": self.message,
        }


def long_axis_spread(lengths_mm: Sequence[float]) -> float:
    """Return (max - min) / median of the lengths, 0.0 for fewer than two."""
    if len(lengths_mm) < 2:
        return 0.0
    ordered = sorted(float(v) for v in lengths_mm)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2.0
    if median <= 0:
        raise ValueError(f"long axes must be positive, got {ordered}")
    return (ordered[-1] - ordered[0]) / median


MEDIAN_ERROR_FACTOR = 1.2533  # sqrt(pi / 2): standard error of a median over that of a mean, normal errors


def median_error_mm(lengths_mm: Sequence[float], weights: Sequence[float] = ()) -> float:
    """Return the standard error of the median of the lengths: 1.2533 * SD (ddof 1) / sqrt(n); 0 for fewer than 2.

    With reliability weights (1 for a typical reader), SD is the weighted SD (ddof-corrected) and n the sum of
    the weights, so a reader of weight 3 counts as three typical readers; equal weights of 1 give the plain figure.
    """
    n = len(lengths_mm)
    if n < 2:
        return 0.0
    values = [float(v) for v in lengths_mm]
    w = [float(v) for v in weights] if weights else [1.0] * n
    if len(w) != n or any(v <= 0 for v in w):
        raise ValueError(f"need one positive weight per length, got {list(weights)} for {n} lengths")
    total = sum(w)
    mean = sum(wi * v for wi, v in zip(w, values, strict=True)) / total
    variance = sum(wi * (v - mean) ** 2 for wi, v in zip(w, values, strict=True)) / total * n / (n - 1)
    return MEDIAN_ERROR_FACTOR * math.sqrt(variance / total)


def read_decision(evidence: CaseEvidence, rule: AdaptiveRule) -> ReadDecision:
    """Return how many more reads the case needs under the rule, and why."""
    n = evidence.n_readers
    if n < 0:
        raise ValueError(f"n_readers must not be negative, got {n}")
    if n < rule.min_reads:
        missing = rule.min_reads - n
        return ReadDecision(missing, rule.min_reads, [f"{n} of the minimum {rule.min_reads} reads"])
    wanted: list[tuple[int, float, str]] = []  # (reads, severity, reason)
    for number, lesion in enumerate(evidence.lesions, start=1):
        name = f"lesion {number}" if len(evidence.lesions) > 1 else "the lesion"
        margin = abs(2 * lesion.support - n)
        if margin < rule.detection_margin:
            wanted.append((rule.detection_margin - margin, 2.0, f"{name} marked by {lesion.support} of {n} readers"))
        lengths = list(lesion.long_axes_mm)
        if len(lengths) >= 2:
            error_mm = median_error_mm(lengths, lesion.reader_weights)
            median = sorted(lengths)[len(lengths) // 2] if len(lengths) % 2 else float(np.median(lengths))
            allowed_mm = max(rule.max_median_error * median, rule.min_median_error_mm)
            if error_mm > allowed_mm:
                # Reads that would bring the error under the allowance at this spread: n * (error / allowed)^2.
                wanted_n = math.ceil(len(lengths) * (error_mm / allowed_mm) ** 2)
                reads = min(max(wanted_n - len(lengths), 1), 2)
                spread = long_axis_spread(lengths)
                prefix = "long axes" if len(evidence.lesions) == 1 else f"{name}: long axes"
                wanted.append((reads, spread, f"{prefix} disagree by {spread:.0%}"))
        if lesion.mean_pairwise_dice is not None and lesion.mean_pairwise_dice < rule.min_mask_dice:
            prefix = "masks" if len(evidence.lesions) == 1 else f"{name}: masks"
            wanted.append(
                (1, 1.0 - lesion.mean_pairwise_dice, f"{prefix} overlap by Dice {lesion.mean_pairwise_dice:.2f}")
            )
    if evidence.answer_agreement is not None and evidence.answer_agreement < rule.min_answer_agreement:
        wanted.append((1, 1.0 - evidence.answer_agreement, f"answers agree {evidence.answer_agreement:.0%}"))
    wanted.sort(key=lambda item: (-item[0], -item[1]))
    reasons = [reason for _, _, reason in wanted]
    needed = max((reads for reads, _, _ in wanted), default=0)
    room = max(rule.max_reads - n, 0)
    more = min(needed, room)
    return ReadDecision(
        more_reads=more,
        target_reads=n + more,
        reasons=reasons,
        at_maximum=needed > room,
    )
