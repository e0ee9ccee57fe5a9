"""Case consensus, the pure core: from one case's reads (dataclasses) to consensus lesions, flags and gold figures.

It groups a case's reader lesions into lesions (lesion_matching), builds each
lesion's consensus line (line_consensus) and STAPLE or majority mask (staple),
summarises agreement, raises the low-agreement flags and scores readers and the
consensus against gold references. `annotations.consensus.case_consensus` loads the rows
that become these dataclasses and stores what `compute_case` returns; this module
never imports Django, never touches the database and never reads pixel data, so
tests and benchmarks call it directly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from annotations.core import answer_consensus, mask_rle
from annotations.core.adaptive_reads import AdaptiveRule, CaseEvidence, LesionEvidence, read_decision
from annotations.core.agreement import dice, mean_pairwise_dice
from annotations.core.answers import Questions
from annotations.core.geometry import FrameGeometry, SeriesGeometry
from annotations.core.lesion_matching import LesionGroup, ReaderLesion, group_lesions, match_points
from annotations.core.line_consensus import DrawnLine, LineConsensus, line_consensus
from annotations.core.staple import majority_vote, staple

# Bump whenever a change in the consensus modules could change a stored result.
# 2.0.0: the consensus line is rebuilt with the median length (median_length_line) instead of the medoid line.
ALGORITHM_VERSION = "2.0.0"

# Task.ConsensusMethod and MarkKind values, spelled out so this module needs no models.
STAPLE = "staple"
MAJORITY = "majority"
LONG_AXIS = "long_axis"


class TaskSettings(Protocol):
    """What ConsensusParams.for_task reads from a Task (or any stand-in)."""

    consensus_method: str
    min_support: int | None
    reads_per_case: int


@dataclass(frozen=True)
class ConsensusParams:
    """Settings of one consensus run; stored with the result and part of its inputs hash."""

    method: str = STAPLE
    min_support: int | None = None
    use_reader_weights: bool = False
    # Flags for expert review.
    max_long_axis_cv: float = 0.20
    min_mask_dice: float = 0.50
    # STAPLE runs over the union of the masks' bounding box grown by this much (see docs/consensus.md).
    roi_margin_fraction: float = 0.25
    roi_margin_min_px: int = 3
    roi_margin_slices: int = 1
    # Adaptive reads (docs/consensus.md): the rule deciding whether a case needs more reads; None for fixed reads.
    adaptive: AdaptiveRule | None = None

    def as_json(self) -> dict:
        return {key: (str(value) if key == "method" else value) for key, value in asdict(self).items()}

    @classmethod
    def for_task(cls, task: TaskSettings, **overrides) -> ConsensusParams:
        if getattr(task, "adaptive_reads", False) and "adaptive" not in overrides:
            overrides["adaptive"] = AdaptiveRule(min_reads=task.min_reads, max_reads=task.reads_per_case)
        return cls(method=str(task.consensus_method), min_support=task.min_support, **overrides)


@dataclass
class ReadInput:
    """One current read of a case, ready for consensus."""

    read_id: int
    reader_id: int
    no_lesion: bool
    quality_problem: bool
    duration_s: float | None
    lesions: list[ReaderLesion] = field(default_factory=list)
    # Read.answers: {"case": {key: value}, "lesions": {"<reader's lesion number>": {key: value}}}.
    answers: dict = field(default_factory=dict)

    def lesion_answers(self, lesion_index: int) -> dict:
        return (self.answers.get("lesions") or {}).get(str(lesion_index)) or {}

    @property
    def painted(self) -> bool:
        return any(lesion.mask_voxels is not None for lesion in self.lesions)


# Gold answers typed in the console carry lengths and at most a slice: their centre is a stand-in.
ADMIN_REFERENCE_SOURCE = "admin"
# A typed-in answer pairs with a line only when their lengths differ by at most this fraction of the answer.
GOLD_LENGTH_TOLERANCE_FRACTION = 0.5


@dataclass(frozen=True)
class ReferenceInput:
    reference_id: int
    center_mm: tuple[float, float, float]
    long_axis_mm: float
    short_axis_mm: float | None
    label: str = ""
    # False for typed-in answers, matched by slice and length instead of by position (docs/consensus.md).
    position_known: bool = True
    sop_instance_uid: str = ""


@dataclass
class CaseInputs:
    """Everything the pure consensus of one case needs."""

    case_id: int
    task_id: int
    reads_per_case: int
    mask_tool: bool
    geometry: SeriesGeometry
    reads: list[ReadInput]
    references: list[ReferenceInput] = field(default_factory=list)
    weights: dict[int, float] = field(default_factory=dict)
    # The task's current questions (None: it has none) and, on a gold case, its answer-key read.
    questions: Questions | None = None
    answer_key: ReadInput | None = None
    # Per-reader weights of answer votes (from gold answer accuracy), used with use_reader_weights.
    answer_weights: dict[int, float] = field(default_factory=dict)


@dataclass
class LesionOutcome:
    lesion_index: int
    support: int
    support_fraction: float
    accepted: bool
    long_axis: dict | None
    short_axis: dict | None
    long_axis_median_mm: float | None
    long_axis_iqr_mm: float | None
    long_axis_cv: float | None
    short_axis_median_mm: float | None
    mask_slices: list[dict] | None
    mask_method: str
    members: list[dict]
    statistics: dict
    anchor_mm: list[float]


@dataclass
class CaseOutcome:
    lesions: list[LesionOutcome]
    summary: dict
    low_agreement: bool
    # Consensus answers per question (docs/consensus.md, "Answers"); empty when the task has no questions.
    answers: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Pure core


def min_support_for(n_readers: int, min_support: int | None) -> int:
    """Return the readers a lesion needs: the task's figure, or a majority of the case's readers."""
    if min_support is not None:
        return max(1, int(min_support))
    return n_readers // 2 + 1


def inputs_hash(inputs: CaseInputs, params: ConsensusParams) -> str:
    """Return a SHA-256 over what determines the result: read ids (reads are immutable), params, weights, gold."""
    payload = {
        "reads": sorted(read.read_id for read in inputs.reads),
        "params": params.as_json(),
        # The adaptive rule reads the weights even when the consensus does not use them.
        "weights": (
            {str(k): round(v, 6) for k, v in sorted(inputs.weights.items())}
            if params.use_reader_weights or params.adaptive is not None
            else None
        ),
        "references": [
            [ref.reference_id, [round(c, 4) for c in ref.center_mm], round(ref.long_axis_mm, 4)]
            + ([] if ref.position_known else [ref.sop_instance_uid])
            for ref in sorted(inputs.references, key=lambda r: r.reference_id)
        ],
    }
    # Only tasks with questions or answer keys hash these, so other tasks keep their stored results.
    if inputs.questions is not None:
        payload["question_version"] = inputs.questions.version
    if inputs.answer_key is not None:
        payload["answer_key"] = inputs.answer_key.read_id
    if params.use_reader_weights and inputs.answer_weights:
        payload["answer_weights"] = {str(k): round(v, 6) for k, v in sorted(inputs.answer_weights.items())}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def compute_case(inputs: CaseInputs, params: ConsensusParams) -> CaseOutcome:
    """Return the consensus lesions, the case summary and the low-agreement flag of one case."""
    reads = sorted(inputs.reads, key=lambda read: read.reader_id)
    n_readers = len(reads)
    needed = min_support_for(n_readers, params.min_support)
    weights = {
        read.reader_id: (inputs.weights.get(read.reader_id, 1.0) if params.use_reader_weights else 1.0)
        for read in reads
    }
    reader_lesions = [lesion for read in reads for lesion in read.lesions]
    groups = group_lesions(reader_lesions, slice_spacing_mm=inputs.geometry.slice_spacing_mm)
    # Mask raters: readers who painted, and "no lesion" voters when painting was possible (they vote background).
    mask_raters = [r.reader_id for r in reads if r.painted or (inputs.mask_tool and r.no_lesion)]
    if not any(r.painted for r in reads):
        mask_raters = []
    outcomes = [
        _lesion_outcome(
            index,
            group,
            inputs=inputs,
            params=params,
            n_readers=n_readers,
            needed=needed,
            weights=weights,
            mask_raters=mask_raters,
        )
        for index, group in enumerate(groups, start=1)
    ]
    summary, flags = _case_summary(inputs, reads, outcomes, params=params, needed=needed)
    answers = case_answers(inputs, reads, outcomes, params=params)
    if answers.get("flags"):
        flags.extend(answers["flags"])  # the same list as summary["flags"]
    if params.adaptive is not None:
        evidence = case_evidence(outcomes, n_readers=n_readers, weights=inputs.weights)
        summary["adaptive"] = read_decision(evidence, params.adaptive).as_json()
    return CaseOutcome(lesions=outcomes, summary=summary, low_agreement=bool(flags), answers=answers)


def case_answers(
    inputs: CaseInputs, reads: Sequence[ReadInput], outcomes: Sequence[LesionOutcome], *, params: ConsensusParams
) -> dict:
    """Return the consensus of every question: case questions over the reads, lesion questions over each
    consensus lesion's members; low-agreement flags; and, with an answer key, each reader's agreement with it.

    Empty when the task has no questions.
    """
    questions = inputs.questions
    if questions is None or questions.is_empty:
        return {}
    weights = inputs.answer_weights if params.use_reader_weights else None
    by_read = {read.read_id: read for read in reads}
    flags: list[str] = []
    case_consensus = {}
    for question in questions.case:
        given = {read.reader_id: (read.answers.get("case") or {}).get(question["key"]) for read in reads}
        case_consensus[question["key"]] = answer_consensus.question_consensus(question, given, weights=weights)
        reason = answer_consensus.low_agreement(question, case_consensus[question["key"]])
        if reason:
            flags.append(f"{question['key']}: {reason}")
    lesion_consensus: dict[str, dict] = {}
    for lesion in outcomes:
        answers_here: dict[str, dict] = {}
        for question in questions.lesion:
            given = {
                member["reader_id"]: by_read[member["read_id"]]
                .lesion_answers(member["lesion_index"])
                .get(question["key"])
                for member in lesion.members
                if member["read_id"] in by_read
            }
            answers_here[question["key"]] = answer_consensus.question_consensus(question, given, weights=weights)
            reason = answer_consensus.low_agreement(question, answers_here[question["key"]])
            if reason and lesion.accepted:
                flags.append(f"lesion {lesion.lesion_index} {question['key']}: {reason}")
        lesion_consensus[str(lesion.lesion_index)] = answers_here
    result = {"version": questions.version, "case": case_consensus, "lesions": lesion_consensus, "flags": flags}
    if inputs.answer_key is not None:
        result["gold"] = _answer_gold(inputs, reads, outcomes, case_consensus, lesion_consensus)
    return result


def _answer_gold(
    inputs: CaseInputs,
    reads: Sequence[ReadInput],
    outcomes: Sequence[LesionOutcome],
    case_consensus: dict,
    lesion_consensus: dict,
) -> dict:
    """Return, per question, each reader's and the consensus' agreement with the answer key.

    Lesion questions compare lesions paired by position with the key's lesions (match_points,
    as gold lesions are paired); unpaired lesions have nothing to compare.
    """
    key = inputs.answer_key
    readers = {str(read.reader_id): _reader_answer_gold(read, inputs=inputs) for read in reads}
    consensus: dict = {}
    for question in inputs.questions.case:
        _tally_answer(
            consensus,
            question,
            _consensus_value(question, case_consensus.get(question["key"], {})),
            (key.answers.get("case") or {}).get(question["key"]),
        )
    accepted = [lesion for lesion in outcomes if lesion.accepted]
    for pair in match_points(
        [lesion.anchor_mm for lesion in accepted],
        [lesion.long_axis_median_mm or 10.0 for lesion in accepted],
        [lesion.anchor_mm for lesion in key.lesions],
        [lesion.size_mm for lesion in key.lesions],
        slice_spacing_mm=inputs.geometry.slice_spacing_mm,
    ):
        expected = key.lesion_answers(key.lesions[pair.right].lesion_index)
        values = lesion_consensus[str(accepted[pair.left].lesion_index)]
        for question in inputs.questions.lesion:
            _tally_answer(
                consensus,
                question,
                _consensus_value(question, values.get(question["key"], {})),
                expected.get(question["key"]),
            )
    return {"answer_key_read_id": key.read_id, "readers": readers, "consensus": consensus}


def _reader_answer_gold(read: ReadInput, *, inputs: CaseInputs) -> dict:
    """One reader's answers against the key: the case's questions, then each lesion paired with a key lesion."""
    key = inputs.answer_key
    figures: dict = {}
    for question in inputs.questions.case:
        _tally_answer(
            figures,
            question,
            (read.answers.get("case") or {}).get(question["key"]),
            (key.answers.get("case") or {}).get(question["key"]),
        )
    for pair in match_points(
        [lesion.anchor_mm for lesion in read.lesions],
        [lesion.size_mm for lesion in read.lesions],
        [lesion.anchor_mm for lesion in key.lesions],
        [lesion.size_mm for lesion in key.lesions],
        slice_spacing_mm=inputs.geometry.slice_spacing_mm,
    ):
        mine = read.lesion_answers(read.lesions[pair.left].lesion_index)
        expected = key.lesion_answers(key.lesions[pair.right].lesion_index)
        for question in inputs.questions.lesion:
            _tally_answer(figures, question, mine.get(question["key"]), expected.get(question["key"]))
    return figures


def _tally_answer(into: dict, question: dict, answer, expected) -> None:
    """Count one answer against the key's under the question's key (skipped when either is missing)."""
    compared = answer_consensus.answer_matches_key(question, answer, expected)
    if compared is None:
        return
    figures = into.setdefault(question["key"], {"n": 0, "correct": 0, "errors": []})
    figures["n"] += 1
    figures["correct"] += int(compared["correct"])
    if "error" in compared:
        figures["errors"].append(compared["error"])
    if question["kind"] in ("single_choice", "yes_no", "likert"):
        # (answer, key) pairs, for the confusion against gold of the results pages.
        figures.setdefault("pairs", []).append([answer, expected])


def _consensus_value(question: dict, summary: dict):
    """The consensus answer compared with a key: the plurality value, or for numbers and Likert the median."""
    if question["kind"] in ("likert", "number") and summary.get("median") is not None:
        median = summary["median"]
        return int(round(median)) if question["kind"] == "likert" else median
    return summary.get("value")


def case_evidence(
    outcomes: Sequence[LesionOutcome], *, n_readers: int, weights: dict[int, float] | None = None
) -> CaseEvidence:
    """Return what the adaptive-reads rule looks at: each lesion's support, reader long axes, their readers'
    reliability weights (1 for a reader without one) and mask overlap."""
    weights = weights or {}
    lesions = []
    for lesion in outcomes:
        lengths = lesion.statistics.get("reader_long_axis_mm") or {}
        lesions.append(
            LesionEvidence(
                support=lesion.support,
                long_axes_mm=list(lengths.values()),
                mean_pairwise_dice=lesion.statistics.get("mean_pairwise_dice"),
                reader_weights=[weights.get(int(reader_id), 1.0) for reader_id in lengths],
            )
        )
    return CaseEvidence(n_readers=n_readers, lesions=lesions)


def _lesion_outcome(
    index: int,
    group: LesionGroup,
    *,
    inputs: CaseInputs,
    params: ConsensusParams,
    n_readers: int,
    needed: int,
    weights: dict[int, float],
    mask_raters: list[int],
) -> LesionOutcome:
    support = len(group.members)
    fraction = support / n_readers if n_readers else 0.0
    statistics: dict = {"min_support": needed, "n_readers": n_readers}
    total_weight = sum(weights.values()) or 1.0
    statistics["weighted_support_fraction"] = sum(weights[m.reader_id] for m in group.members) / total_weight
    frames = {frame.key: frame for frame in inputs.geometry.frames}
    long_result = _line_result(group.lines("long_axis"), weights, params, frames)
    short_result = _line_result(group.lines("short_axis"), weights, params, frames)
    if long_result is not None:
        statistics["reader_long_axis_mm"] = {str(k): v for k, v in long_result.lengths_mm.items()}
        statistics["medoid_cost_mm"] = long_result.medoid_cost_mm
        statistics["medoid_reader_id"] = long_result.medoid.reader_id
    if short_result is not None:
        statistics["reader_short_axis_mm"] = {str(k): v for k, v in short_result.lengths_mm.items()}
    mask_slices = None
    mask_method = ""
    painted = group.masks()
    if painted and mask_raters:
        mask_slices, mask_statistics = _mask_consensus(painted, mask_raters, inputs.geometry, params)
        mask_method = str(params.method)
        statistics.update(mask_statistics)
    return LesionOutcome(
        lesion_index=index,
        support=support,
        support_fraction=fraction,
        accepted=support >= needed,
        long_axis=long_result.line.as_json() if long_result else None,
        short_axis=short_result.line.as_json() if short_result else None,
        long_axis_median_mm=long_result.median_mm if long_result else None,
        long_axis_iqr_mm=long_result.iqr_mm if long_result else None,
        long_axis_cv=long_result.cv if long_result else None,
        short_axis_median_mm=short_result.median_mm if short_result else None,
        mask_slices=mask_slices,
        mask_method=mask_method,
        members=[
            {"read_id": m.read_id, "reader_id": m.reader_id, "lesion_index": m.lesion_index} for m in group.members
        ],
        statistics=statistics,
        anchor_mm=[float(v) for v in group.anchor_mm],
    )


def _line_result(
    lines: list[DrawnLine],
    weights: dict[int, float],
    params: ConsensusParams,
    frames: dict[tuple[str, int], FrameGeometry],
) -> LineConsensus | None:
    if not lines:
        return None
    line_weights = [weights[line.reader_id] for line in lines] if params.use_reader_weights else None
    return line_consensus(lines, weights=line_weights, frames=frames)


def _mask_consensus(
    painted: dict[int, np.ndarray], raters: list[int], geometry: SeriesGeometry, params: ConsensusParams
) -> tuple[list[dict], dict]:
    """Return the consensus mask slices (run lengths) and mask statistics of one lesion."""
    shape = geometry.shape
    raters = sorted(set(raters) | set(painted))
    union = np.unique(np.concatenate([voxels for voxels in painted.values()]))
    k, r, c = np.unravel_index(union, shape)
    lo = np.array([k.min(), r.min(), c.min()])
    hi = np.array([k.max(), r.max(), c.max()]) + 1
    extent = hi - lo
    margin = np.maximum(params.roi_margin_min_px, np.ceil(params.roi_margin_fraction * extent)).astype(int)
    margin[0] = params.roi_margin_slices
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, np.array(shape))
    roi_shape = tuple(int(v) for v in hi - lo)

    def dense(voxels: np.ndarray | None) -> np.ndarray:
        volume = np.zeros(roi_shape, dtype=bool)
        if voxels is not None and voxels.size:
            kk, rr, cc = np.unravel_index(voxels, shape)
            volume[kk - lo[0], rr - lo[1], cc - lo[2]] = True
        return volume

    volumes = [dense(painted.get(reader)) for reader in raters]
    statistics: dict = {"mask_raters": raters, "roi": {"start": lo.tolist(), "shape": list(roi_shape)}}
    if params.method == MAJORITY:
        label = majority_vote(volumes)
    else:
        result = staple(volumes)
        label = result.label
        statistics["staple"] = {
            "prior": result.prior,
            "iterations": result.iterations,
            "readers": {
                str(reader): {"sensitivity": _finite(p), "specificity": _finite(q)}
                for reader, p, q in zip(raters, result.sensitivity, result.specificity, strict=True)
            },
            "mean_posterior_in_label": _finite(float(result.posterior[label].mean())) if label.any() else None,
        }
    kk, rr, cc = np.nonzero(label)
    consensus_voxels = np.ravel_multi_index((kk + lo[0], rr + lo[1], cc + lo[2]), shape)
    consensus_voxels.sort()
    statistics["consensus_voxels"] = int(consensus_voxels.size)
    voxel_mm3 = float(np.prod(geometry.voxel_size_mm()))
    statistics["consensus_volume_mm3"] = consensus_voxels.size * voxel_mm3
    statistics["dice_to_consensus"] = {
        str(reader): dice(voxels, consensus_voxels) for reader, voxels in painted.items()
    }
    statistics["mean_pairwise_dice"] = mean_pairwise_dice([painted[reader] for reader in sorted(painted)])
    slices = []
    plane = shape[1] * shape[2]
    slice_of = consensus_voxels // plane
    for slice_index in np.unique(slice_of):
        frame = geometry.frames[int(slice_index)]
        in_plane = consensus_voxels[slice_of == slice_index] - slice_index * plane
        slices.append(
            {
                "sop_instance_uid": frame.sop_instance_uid,
                "frame": frame.frame,
                "counts": mask_rle.encode_indices(in_plane, rows=shape[1], columns=shape[2]),
            }
        )
    return slices, statistics


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _case_summary(
    inputs: CaseInputs, reads: list[ReadInput], outcomes: list[LesionOutcome], *, params: ConsensusParams, needed: int
) -> tuple[dict, list[str]]:
    n_readers = len(reads)
    n_no_lesion = sum(1 for read in reads if read.no_lesion)
    n_with_lesions = sum(1 for read in reads if read.lesions)
    flags: list[str] = []
    if n_readers >= 2 and min(n_no_lesion, n_with_lesions) / n_readers > 1 / 3:
        flags.append("readers split on whether there is a lesion")
    for lesion in outcomes:
        name = f"lesion {lesion.lesion_index}"
        if n_readers >= 3 and 1 / 3 <= lesion.support_fraction < 2 / 3:
            flags.append(f"{name}: marked by {lesion.support} of {n_readers} readers")
        if lesion.accepted and lesion.long_axis_cv is not None and lesion.long_axis_cv > params.max_long_axis_cv:
            flags.append(f"{name}: long-axis lengths vary by CV {lesion.long_axis_cv:.2f}")
        pairwise = lesion.statistics.get("mean_pairwise_dice")
        if lesion.accepted and pairwise is not None and pairwise < params.min_mask_dice:
            flags.append(f"{name}: masks overlap poorly (mean Dice {pairwise:.2f})")
    summary = {
        "n_readers": n_readers,
        "reader_ids": [read.reader_id for read in reads],
        "reads_per_case": inputs.reads_per_case,
        "complete": n_readers >= inputs.reads_per_case,
        "n_no_lesion": n_no_lesion,
        "n_with_lesions": n_with_lesions,
        "n_quality_problem": sum(1 for read in reads if read.quality_problem),
        "n_lesions": len(outcomes),
        "n_accepted": sum(1 for lesion in outcomes if lesion.accepted),
        "min_support": needed,
        "slice_spacing_mm": inputs.geometry.slice_spacing_mm,
        "flags": flags,
        "agreement": _detection_agreement(outcomes, n_readers=n_readers, n_no_lesion=n_no_lesion),
    }
    references = gold_references(inputs)
    if references:
        summary["gold"] = _gold_figures(inputs, reads, outcomes, references)
    return summary, flags


def _detection_agreement(outcomes: list[LesionOutcome], *, n_readers: int, n_no_lesion: int) -> float | None:
    """Return how far the readers agreed on what is there (0 to 1): the mean support fraction of the
    case's lesion groups, or, when nobody marked a lesion, the share of readers who said "no lesion"."""
    if n_readers == 0:
        return None
    if not outcomes:
        return round(n_no_lesion / n_readers, 4)
    return round(sum(lesion.support_fraction for lesion in outcomes) / len(outcomes), 4)


def gold_references(inputs: CaseInputs) -> list[ReferenceInput]:
    """Return the references a gold case's readers are scored against.

    An answer key whose lesions have long axes is the reference (drawn by an admin in the reading
    viewer, so its lines have real positions); otherwise the series' reference lesions are. Answer-key
    references get negative ids (-1 for its lesion 1, ...) so they never pass for ReferenceLesion rows.
    """
    key = inputs.answer_key
    drawn = [lesion for lesion in key.lesions if lesion.long_axis is not None] if key is not None else []
    if not drawn:
        return list(inputs.references)
    return [
        ReferenceInput(
            reference_id=-lesion.lesion_index,
            center_mm=tuple(float(v) for v in lesion.long_axis.midpoint_mm),
            long_axis_mm=float(lesion.long_axis.length_mm),
            short_axis_mm=float(lesion.short_axis.length_mm) if lesion.short_axis is not None else None,
            label=f"Answer key lesion {lesion.lesion_index}",
            position_known=True,
            sop_instance_uid=lesion.long_axis.sop_instance_uid,
        )
        for lesion in drawn
    ]


def _gold_figures(
    inputs: CaseInputs, reads: list[ReadInput], outcomes: list[LesionOutcome], refs: list[ReferenceInput]
) -> dict:
    """Return each reader's and the consensus' errors against the reference lesions of a gold case.

    References with a known position (synthetic ground truth) pair with long axes by
    position, as lesions are matched; typed-in answers, whose centre is only a stand-in,
    pair with the lines left over by slice and nearest length (see match_by_slice_and_length).
    """
    placed = [i for i, ref in enumerate(refs) if ref.position_known]
    typed = [i for i, ref in enumerate(refs) if not ref.position_known]
    spacing = inputs.geometry.slice_spacing_mm

    def score(anchors: list, lengths: list[float], slices: list[str]) -> dict:
        pairs = [
            (p.left, placed[p.right], p.distance_mm, "position")
            for p in match_points(
                anchors,
                lengths,
                [refs[i].center_mm for i in placed],
                [refs[i].long_axis_mm for i in placed],
                slice_spacing_mm=spacing,
            )
        ]
        used = {left for left, *_ in pairs}
        free = [i for i in range(len(lengths)) if i not in used]
        pairs += [
            (free[left], typed[right], None, "slice_and_length")
            for left, right in match_by_slice_and_length(
                [lengths[i] for i in free],
                [slices[i] for i in free],
                [refs[i].long_axis_mm for i in typed],
                [refs[i].sop_instance_uid for i in typed],
            )
        ]
        matched = [
            {
                "reference_id": refs[right].reference_id,
                "measured_mm": float(lengths[left]),
                "reference_mm": refs[right].long_axis_mm,
                "error_mm": float(lengths[left] - refs[right].long_axis_mm),
                "distance_mm": distance,
                "matched_by": how,
            }
            for left, right, distance, how in sorted(pairs, key=lambda pair: pair[1])
        ]
        return {
            "matched": matched,
            "missed": len(refs) - len(matched),
            "false_positives": len(anchors) - len(matched),
        }

    readers = {}
    for read in reads:
        lines = [lesion.long_axis for lesion in read.lesions if lesion.long_axis is not None]
        readers[str(read.reader_id)] = score(
            [line.midpoint_mm.tolist() for line in lines],
            [line.length_mm for line in lines],
            [line.sop_instance_uid for line in lines],
        )
    accepted = [o for o in outcomes if o.accepted and o.long_axis_median_mm is not None]
    consensus_anchors = [_line_midpoint(o.long_axis, inputs.geometry) or o.anchor_mm for o in accepted]
    consensus = score(
        consensus_anchors,
        [o.long_axis_median_mm for o in accepted],
        [(o.long_axis or {}).get("sop_instance_uid", "") for o in accepted],
    )
    return {"references": [asdict(ref) for ref in refs], "readers": readers, "consensus": consensus}


def match_by_slice_and_length(
    lengths_mm: Sequence[float],
    slices: Sequence[str],
    reference_lengths_mm: Sequence[float],
    reference_slices: Sequence[str],
    *,
    tolerance_fraction: float = GOLD_LENGTH_TOLERANCE_FRACTION,
) -> list[tuple[int, int]]:
    """Return one-to-one (line, reference) index pairs for references known only by slice and length.

    A line may pair with a reference when it lies on the reference's slice (SOP
    Instance UID; a reference without a slice accepts any slice) and its length is
    within tolerance_fraction of the reference's; among those pairs the assignment
    with the least total length difference wins, so each line takes its nearest length.
    """
    if not lengths_mm or not reference_lengths_mm:
        return []
    if tolerance_fraction <= 0:
        raise ValueError(f"tolerance_fraction must be positive, got {tolerance_fraction}")
    difference = np.abs(np.subtract.outer(np.asarray(lengths_mm, float), np.asarray(reference_lengths_mm, float)))
    same_slice = np.array([[not ref or ref == line for ref in reference_slices] for line in slices], dtype=bool)
    allowed = same_slice & (difference <= tolerance_fraction * np.asarray(reference_lengths_mm, float)[None, :])
    if not allowed.any():
        return []
    # Forbidden pairs cost more than any allowed assignment, so they are chosen only when forced, then dropped.
    cost = np.where(allowed, difference, float(difference.max() + 1.0) * (difference.size + 1))
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if allowed[i, j]]


def _line_midpoint(line: dict | None, geometry: SeriesGeometry) -> list[float] | None:
    if not line:
        return None
    frame = geometry.frame(line["sop_instance_uid"], line["frame"])
    if frame is None:
        return None
    mid = frame.to_patient_mm((line["start"][0] + line["end"][0]) / 2, (line["start"][1] + line["end"][1]) / 2)
    return mid.tolist()


# --------------------------------------------------------------------------------------------------------------
# A read's lesions from its mark and mask rows (plain dicts)


def _drawn_line(mark: dict, frame: FrameGeometry, reader_id: int) -> DrawnLine:
    start = (mark["start_col"], mark["start_row"])
    end = (mark["end_col"], mark["end_row"])
    return DrawnLine.on_frame(frame, start=start, end=end, reader_id=reader_id, read_id=mark["read_id"])


def _line_voxels(line: DrawnLine, geometry: SeriesGeometry) -> np.ndarray | None:
    slice_index = geometry.slice_index(line.sop_instance_uid, line.frame)
    if slice_index is None:
        return None
    _, rows, columns = geometry.shape
    steps = int(math.ceil(max(abs(line.end[0] - line.start[0]), abs(line.end[1] - line.start[1])) * 2)) + 1
    t = np.linspace(0.0, 1.0, steps)
    cols = np.clip(np.rint(line.start[0] + t * (line.end[0] - line.start[0])), 0, columns - 1).astype(np.int64)
    rws = np.clip(np.rint(line.start[1] + t * (line.end[1] - line.start[1])), 0, rows - 1).astype(np.int64)
    return np.unique(slice_index * rows * columns + rws * columns + cols)


def _mask_anchor(voxels: np.ndarray, geometry: SeriesGeometry) -> tuple[tuple[float, float, float], float]:
    """Return a mask's centroid (patient mm) and its greatest in-plane extent (mm)."""
    k, r, c = np.unravel_index(voxels, geometry.shape)
    points = []
    extent = 0.0
    for slice_index in np.unique(k):
        on_slice = k == slice_index
        frame = geometry.frames[int(slice_index)]
        rr, cc = r[on_slice], c[on_slice]
        points.append(frame.to_patient_mm(float(cc.mean()), float(rr.mean())) * on_slice.sum())
        row_spacing, column_spacing = frame.pixel_spacing_mm
        extent = max(extent, (cc.max() - cc.min() + 1) * column_spacing, (rr.max() - rr.min() + 1) * row_spacing)
    centroid = np.sum(points, axis=0) / voxels.size
    return tuple(float(v) for v in centroid), float(extent)


def build_reader_lesions(
    *,
    read_id: int,
    reader_id: int,
    marks: Iterable[dict],
    mask_slices: Iterable[dict],
    frames: dict[tuple[int, int], FrameGeometry],
    geometry: SeriesGeometry,
) -> list[ReaderLesion]:
    """Return one read's lesions from its Mark and MaskSlice rows (as dicts with instance_id)."""
    long_axes: dict[int, DrawnLine] = {}
    short_axes: dict[int, DrawnLine] = {}
    masks: dict[int, list[np.ndarray]] = defaultdict(list)
    for mark in marks:
        frame = frames.get((mark["instance_id"], mark["frame"]))
        if frame is None:
            continue
        line = _drawn_line(mark, frame, reader_id)
        (long_axes if mark["kind"] == LONG_AXIS else short_axes)[mark["lesion_index"]] = line
    _, rows, columns = geometry.shape
    for mask_slice in mask_slices:
        frame = frames.get((mask_slice["instance_id"], mask_slice["frame"]))
        slice_index = geometry.slice_index(frame.sop_instance_uid, frame.frame) if frame else None
        if slice_index is None:
            continue  # Frames outside the series' grid (a differently sized image) cannot join a 3-D mask.
        pixels = mask_rle.foreground_indices(mask_slice["counts"], rows=rows, columns=columns)
        if pixels.size:
            masks[mask_slice["lesion_index"]].append(pixels + slice_index * rows * columns)
    lesions = []
    for lesion_index in sorted(set(long_axes) | set(masks)):
        long_axis = long_axes.get(lesion_index)
        voxels = np.unique(np.concatenate(masks[lesion_index])) if masks.get(lesion_index) else None
        if long_axis is not None:
            anchor = tuple(float(v) for v in long_axis.midpoint_mm)
            size = long_axis.length_mm
        else:
            anchor, size = _mask_anchor(voxels, geometry)
        lesions.append(
            ReaderLesion(
                reader_id=reader_id,
                read_id=read_id,
                lesion_index=lesion_index,
                anchor_mm=anchor,
                size_mm=size,
                long_axis=long_axis,
                short_axis=short_axes.get(lesion_index),
                mask_voxels=voxels,
                line_voxels=_line_voxels(long_axis, geometry) if long_axis is not None else None,
            )
        )
    return lesions
