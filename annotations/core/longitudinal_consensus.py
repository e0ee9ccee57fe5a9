"""Consensus over time, the pure core: baseline lesions followed by key, new lesions matched, RECIST by consensus.

Within each follow-up time point, readers' measurements of a baseline lesion are linked by the lesion's baseline
identity (its key), and readers' new lesions are grouped with the existing lesion matching
(services.lesion_matching). Each lesion's consensus status is the majority of readers' statuses and its size
the median of their lengths, with the consensus line of services.line_consensus. The consensus response per
time point is RECIST 1.1 (services.recist) on those consensus sizes and the accepted new lesions. Agreement
between readers' response categories is Fleiss' and Cohen's kappa. Pure: dataclasses in and out, no database.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from annotations.core import recist
from annotations.core.agreement import fleiss_kappa
from annotations.core.geometry import FrameGeometry
from annotations.core.lesion_matching import ReaderLesion, group_lesions
from annotations.core.line_consensus import DrawnLine, line_consensus

ALGORITHM_VERSION = "longitudinal-1.0.0"
CATEGORIES = tuple(str(response) for response in recist.Response)
# Ties between statuses favour the one that keeps information: a measurement over "gone" over "not evaluable".
STATUS_ORDER = (recist.Status.MEASURED, recist.Status.DISAPPEARED, recist.Status.NOT_EVALUABLE)


@dataclass(frozen=True)
class LesionReading:
    """One reader's record of one baseline lesion at one follow-up time point."""

    status: recist.Status
    long_axis: DrawnLine | None = None
    short_axis: DrawnLine | None = None


@dataclass(frozen=True)
class FollowUpReadInput:
    read_id: int
    reader_id: int
    # time point index -> baseline key -> what the reader recorded
    lesions: Mapping[int, Mapping[str, LesionReading]]
    # time point index -> the reader's new lesions placed in patient space (for matching)
    new_lesions: Mapping[int, Sequence[ReaderLesion]] = field(default_factory=dict)

    def measurements(self) -> list[recist.TimePointMeasurements]:
        return [
            recist.TimePointMeasurements(
                index=index,
                lesions={key: _as_recist(reading) for key, reading in by_key.items()},
                new_lesions=len(self.new_lesions.get(index, ())),
            )
            for index, by_key in sorted(self.lesions.items())
        ]


@dataclass(frozen=True)
class LongitudinalInputs:
    baseline: Sequence[recist.BaselineLesionSize]
    reads: Sequence[FollowUpReadInput]
    time_points: Sequence[int]  # follow-up indices (1..n)
    slice_spacing_mm: Mapping[int, float]
    frames: Mapping[tuple[str, int], FrameGeometry] = field(default_factory=dict)
    # The answer key's measurements, when known (demo truth or an admin's), for reader accuracy.
    truth: Sequence[recist.TimePointMeasurements] | None = None
    min_support: int | None = None


@dataclass
class LesionConsensus:
    key: str  # baseline key, or "N<index>.<n>" for a new lesion
    index: int
    status: str
    support: int
    n_readers: int
    long_axis_median_mm: float | None = None
    long_axis_iqr_mm: float | None = None
    short_axis_median_mm: float | None = None
    long_axis: dict | None = None
    short_axis: dict | None = None
    is_new: bool = False
    accepted: bool = True
    lengths_mm: dict[int, float] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)


@dataclass
class LongitudinalOutcome:
    lesions: list[LesionConsensus]
    consensus: list[recist.TimePointResponse]
    reader_responses: dict[int, dict[int, str]]  # reader -> time point -> category
    truth: list[recist.TimePointResponse] | None
    agreement: dict

    def summary(self) -> dict:
        """Return the JSON stored in CaseConsensus.summary for a follow-up case."""
        return {
            "kind": "follow_up",
            "consensus_recist": [result.as_dict() for result in self.consensus],
            "truth_recist": None if self.truth is None else [result.as_dict() for result in self.truth],
            "reader_responses": {str(r): {str(i): c for i, c in v.items()} for r, v in self.reader_responses.items()},
            "agreement": self.agreement,
        }


def min_support_for(n_readers: int, min_support: int | None) -> int:
    """A majority of the readers unless the task sets its own minimum."""
    return min_support if min_support else n_readers // 2 + 1


def compute_longitudinal(inputs: LongitudinalInputs) -> LongitudinalOutcome:
    """Return the consensus of one follow-up case over all its time points."""
    n_readers = len(inputs.reads)
    needed = min_support_for(n_readers, inputs.min_support)
    lesions: list[LesionConsensus] = []
    consensus_points: list[recist.TimePointMeasurements] = []
    for index in sorted(inputs.time_points):
        by_key: dict[str, recist.LesionAtTimePoint] = {}
        for baseline in inputs.baseline:
            outcome = _baseline_lesion_consensus(baseline.key, index, inputs, n_readers)
            lesions.append(outcome)
            if outcome.status == recist.Status.MEASURED:
                by_key[baseline.key] = recist.LesionAtTimePoint(
                    recist.Status.MEASURED, outcome.long_axis_median_mm, outcome.short_axis_median_mm
                )
            else:
                by_key[baseline.key] = recist.LesionAtTimePoint(recist.Status(outcome.status))
        new_groups = _new_lesion_consensus(index, inputs, n_readers, needed)
        lesions.extend(new_groups)
        consensus_points.append(
            recist.TimePointMeasurements(
                index=index, lesions=by_key, new_lesions=sum(1 for group in new_groups if group.accepted)
            )
        )
    consensus = recist.assess(inputs.baseline, consensus_points) if n_readers else []
    reader_responses = {
        read.reader_id: {
            result.index: str(result.response) for result in recist.assess(inputs.baseline, read.measurements())
        }
        for read in inputs.reads
    }
    truth = recist.assess(inputs.baseline, inputs.truth) if inputs.truth else None
    agreement = {
        "readers": n_readers,
        "per_time_point": {
            str(index): _categories_summary([responses.get(index) for responses in reader_responses.values()])
            for index in sorted(inputs.time_points)
        },
    }
    return LongitudinalOutcome(
        lesions=lesions,
        consensus=consensus,
        reader_responses=reader_responses,
        truth=truth,
        agreement=agreement,
    )


def _as_recist(reading: LesionReading) -> recist.LesionAtTimePoint:
    if reading.status != recist.Status.MEASURED:
        return recist.LesionAtTimePoint(reading.status)
    return recist.LesionAtTimePoint(
        recist.Status.MEASURED,
        reading.long_axis.length_mm if reading.long_axis else None,
        reading.short_axis.length_mm if reading.short_axis else None,
    )


def majority_status(statuses: Sequence[str]) -> str | None:
    """Return the most frequent status; ties go to measured, then disappeared, then not evaluable."""
    if not statuses:
        return None
    counts = Counter(statuses)
    return max(STATUS_ORDER, key=lambda status: (counts.get(str(status), 0), -STATUS_ORDER.index(status))).value


def _baseline_lesion_consensus(key: str, index: int, inputs: LongitudinalInputs, n_readers: int) -> LesionConsensus:
    readings = {
        read.reader_id: read.lesions[index][key]
        for read in inputs.reads
        if index in read.lesions and key in read.lesions[index]
    }
    statuses = {reader: str(reading.status) for reader, reading in readings.items()}
    status = majority_status(list(statuses.values())) or str(recist.Status.NOT_EVALUABLE)
    outcome = LesionConsensus(
        key=key,
        index=index,
        status=status,
        support=sum(1 for value in statuses.values() if value == status),
        n_readers=n_readers,
        statuses=statuses,
    )
    long_lines = [r.long_axis for r in readings.values() if r.status == recist.Status.MEASURED and r.long_axis]
    short_lines = [r.short_axis for r in readings.values() if r.status == recist.Status.MEASURED and r.short_axis]
    if status == recist.Status.MEASURED and long_lines:
        result = line_consensus(long_lines, frames=dict(inputs.frames))
        outcome.long_axis_median_mm = result.median_mm
        outcome.long_axis_iqr_mm = result.iqr_mm
        outcome.long_axis = result.line.as_json()
        outcome.lengths_mm = result.lengths_mm
        if short_lines:
            short = line_consensus(short_lines, frames=dict(inputs.frames))
            outcome.short_axis_median_mm = short.median_mm
            outcome.short_axis = short.line.as_json()
    return outcome


def _new_lesion_consensus(index: int, inputs: LongitudinalInputs, n_readers: int, needed: int) -> list[LesionConsensus]:
    candidates = [lesion for read in inputs.reads for lesion in read.new_lesions.get(index, ())]
    groups = group_lesions(candidates, slice_spacing_mm=inputs.slice_spacing_mm.get(index, 1.0))
    answer = []
    for number, group in enumerate(groups, start=1):
        lines = group.lines("long_axis")
        outcome = LesionConsensus(
            key=f"N{index}.{number}",
            index=index,
            status=str(recist.Status.MEASURED),
            support=len(group.members),
            n_readers=n_readers,
            is_new=True,
            accepted=len(group.members) >= needed,
        )
        if lines:
            result = line_consensus(lines, frames=dict(inputs.frames))
            outcome.long_axis_median_mm = result.median_mm
            outcome.long_axis_iqr_mm = result.iqr_mm
            outcome.long_axis = result.line.as_json()
            outcome.lengths_mm = result.lengths_mm
        answer.append(outcome)
    return answer


def _categories_summary(categories: Sequence[str | None]) -> dict:
    given = [category for category in categories if category is not None]
    counts = Counter(given)
    return {"counts": {category: counts.get(category, 0) for category in CATEGORIES}, "n": len(given)}


# --- Agreement over a task's cases ------------------------------------------------------------


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Return Cohen's kappa of two raters' categories over the same subjects (None when undefined)."""
    if len(a) != len(b):
        raise ValueError(f"two raters need the same subjects, got {len(a)} and {len(b)}")
    if not a:
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    counts_a, counts_b = Counter(a), Counter(b)
    expected = sum(counts_a[c] * counts_b[c] for c in set(a) | set(b)) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def response_agreement(subjects: Sequence[Mapping[int, str]]) -> dict:
    """Return agreement between readers' response categories over subjects (patient x time point).

    Fleiss' kappa uses the subjects rated by the most common number (>= 2) of readers; Cohen's kappa is given
    for every pair of readers over the subjects both rated (at least 2), with their mean.
    """
    sizes = Counter(len(subject) for subject in subjects if len(subject) >= 2)
    fleiss = None
    if sizes:
        n_raters = max(sizes, key=lambda size: (sizes[size], size))
        rows = [subject for subject in subjects if len(subject) == n_raters]
        table = np.array([[list(subject.values()).count(category) for category in CATEGORIES] for subject in rows])
        result = fleiss_kappa(table)
        fleiss = {
            "kappa": None if np.isnan(result.kappa) else round(result.kappa, 4),
            "observed_agreement": round(result.observed_agreement, 4),
            "subjects": result.n_subjects,
            "raters": result.n_raters,
        }
    readers = sorted({reader for subject in subjects for reader in subject})
    pairs = {}
    for first, second in itertools.combinations(readers, 2):
        both = [subject for subject in subjects if first in subject and second in subject]
        if len(both) < 2:
            continue
        kappa = cohen_kappa([s[first] for s in both], [s[second] for s in both])
        if kappa is not None:
            pairs[f"{first}-{second}"] = round(kappa, 4)
    return {
        "fleiss": fleiss,
        "cohen_pairs": pairs,
        "cohen_mean": round(float(np.mean(list(pairs.values()))), 4) if pairs else None,
    }


def reader_accuracy(subjects: Sequence[Mapping[int, str]], reference: Sequence[str | None]) -> dict[int, dict]:
    """Return, per reader, the share of subjects where their category equals the reference's (skipping None)."""
    if len(subjects) != len(reference):
        raise ValueError(f"got {len(reference)} reference categories for {len(subjects)} subjects")
    tallies: dict[int, list[int]] = {}
    for subject, expected in zip(subjects, reference, strict=True):
        if expected is None:
            continue
        for reader, category in subject.items():
            tally = tallies.setdefault(reader, [0, 0])
            tally[0] += category == expected
            tally[1] += 1
    return {reader: {"agree": a, "n": n, "accuracy": round(a / n, 4)} for reader, (a, n) in tallies.items()}
