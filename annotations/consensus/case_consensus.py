"""Case consensus service: loads a case's current reads, runs the pure core, stores the result rows.

It loads each case's current reads (the latest version per reader, skips left
out) and the series geometry into the dataclasses of `case_consensus`, whose
`compute_case` does all the numerical work (lesion matching, consensus lines,
STAPLE or majority masks, flags, gold figures), and stores CaseConsensus /
ConsensusLesion rows keyed by the inputs' hash and ALGORITHM_VERSION, so a rerun
with the same inputs finds the rows it made instead of making new ones. It also
keeps each case's adaptive read target and the readers' quality figures. This
module never changes a Read, and nothing it returns may be shown to a reader of
an open task.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max, Sum

from annotations.core.agreement import bland_altman, leave_one_out_deviations
from annotations.core.answer_consensus import accuracy_by_reader, answer_weights
from annotations.core.case_consensus import (
    ADMIN_REFERENCE_SOURCE,
    ALGORITHM_VERSION,
    CaseInputs,
    CaseOutcome,
    ConsensusParams,
    LesionOutcome,
    ReadInput,
    ReferenceInput,
    build_reader_lesions,
    compute_case,
    inputs_hash,
    match_by_slice_and_length,
    min_support_for,
)
from annotations.core.geometry import (
    FrameGeometry,
    SeriesGeometry,
    frames_of_instance,
    series_geometry,
    series_geometry_from_frames,
)
from annotations.core.longitudinal_consensus import ALGORITHM_VERSION as LONGITUDINAL_VERSION
from annotations.models import Case, CaseConsensus, ConsensusLesion, Mark, MaskSlice, Read, ReaderQuality, Task
from annotations.models.tasks import ReferenceLesion, Tool
from annotations.questions.services import current_question_set_of, questions_of
from viewer.models import Instance

logger = logging.getLogger(__name__)

# Names other modules and tests import from here; the definitions live in the pure core.
__all__ = [
    "ADMIN_REFERENCE_SOURCE",
    "ALGORITHM_VERSION",
    "CaseInputs",
    "CaseOutcome",
    "ConsensusParams",
    "LesionOutcome",
    "ReadInput",
    "ReferenceInput",
    "compute_case",
    "compute_case_consensus",
    "current_reads",
    "inputs_hash",
    "load_case_inputs",
    "match_by_slice_and_length",
    "min_support_for",
    "recompute_task_consensus",
    "refresh_reader_quality",
    "stale_case_ids",
]

INSTANCE_FIELDS = ("pk", "series_id", *Instance.GEOMETRY_FIELDS)

# --------------------------------------------------------------------------------------------------------------
# Building inputs from rows


class _InstanceRow:
    """An Instance's geometry from a values() row, so frames_of_instance can read it without a model."""

    def __init__(self, row: dict):
        self.__dict__.update(row)


def current_reads(case_ids: Sequence[int]) -> dict[int, list[dict]]:
    """Return, per case, its current reads: the latest version of each reader, skips left out."""
    latest: dict[tuple[int, int], dict] = {}
    rows = Read.objects.filter(case_id__in=case_ids).values(
        "id", "case_id", "reader_id", "version", "no_lesion", "skip", "quality_problem", "duration_s", "answers"
    )
    for row in rows:
        key = (row["case_id"], row["reader_id"])
        if key not in latest or row["version"] > latest[key]["version"]:
            latest[key] = row
    per_case: dict[int, list[dict]] = defaultdict(list)
    for row in latest.values():
        if not row["skip"]:
            per_case[row["case_id"]].append(row)
    return per_case


def load_case_inputs(
    case_ids: Sequence[int],
    *,
    weights: dict[int, dict[int, float]] | None = None,
    with_marks: bool = True,
    answer_weights: dict[int, dict[int, float]] | None = None,
) -> dict[int, CaseInputs]:
    """Return the consensus inputs of the given cases, with a handful of queries however many cases there are.

    Without marks the reads carry no lesions: enough for `inputs_hash`, much cheaper to load.
    """
    cases = list(Case.objects.filter(pk__in=case_ids).select_related("task"))
    reads = current_reads([case.pk for case in cases])
    questions = {task_id: questions_of(current_question_set_of(task_id)) for task_id in {c.task_id for c in cases}}
    keys = _answer_keys([case for case in cases if case.is_gold])
    references = _references([case for case in cases if case.is_gold])
    answer_weights = answer_weights or {}
    drawings = _load_drawings(cases=cases, reads=reads, keys=keys) if with_marks else None
    result = {}
    for case in cases:
        geometry = (drawings.geometries.get(case.series_id) if drawings else None) or series_geometry([])
        if drawings is None:
            read_inputs = [_bare_read_input(row) for row in reads.get(case.pk, [])]
            answer_key = ReadInput(keys[case.pk]["id"], 0, False, False, None) if case.pk in keys else None
        else:
            read_inputs = [drawings.read_input(row, geometry=geometry) for row in reads.get(case.pk, [])]
            answer_key = drawings.read_input(keys[case.pk], geometry=geometry) if case.pk in keys else None
        result[case.pk] = CaseInputs(
            case_id=case.pk,
            task_id=case.task_id,
            reads_per_case=case.task.reads_per_case,
            mask_tool=Tool.MASK in (case.task.tools or []),
            geometry=geometry,
            reads=read_inputs,
            references=references.get(case.series_id, []) if case.is_gold else [],
            weights=(weights or {}).get(case.task_id, {}),
            questions=questions[case.task_id],
            answer_key=answer_key,
            answer_weights=answer_weights.get(case.task_id, {}),
        )
    return result


@dataclass(frozen=True)
class _Drawings:
    """The cases' series geometry and every current read's marks and painted mask slices."""

    geometries: dict[int, SeriesGeometry]
    frames: dict[tuple[int, int], FrameGeometry]
    marks: dict[int, list[dict]]
    masks: dict[int, list[dict]]

    def read_input(self, row: dict, *, geometry: SeriesGeometry) -> ReadInput:
        """Return a read (or answer key: it has no reader) with its lesions built from its marks and masks."""
        reader_id = row["reader_id"] or 0
        return ReadInput(
            read_id=row["id"],
            reader_id=reader_id,
            no_lesion=row["no_lesion"],
            quality_problem=row["quality_problem"],
            duration_s=row["duration_s"],
            lesions=build_reader_lesions(
                read_id=row["id"],
                reader_id=reader_id,
                marks=self.marks.get(row["id"], []),
                mask_slices=self.masks.get(row["id"], []),
                frames=self.frames,
                geometry=geometry,
            ),
            answers=row["answers"] or {},
        )


def _bare_read_input(row: dict) -> ReadInput:
    # Enough for the inputs hash: which reads, with which flags and durations; no lesions.
    return ReadInput(row["id"], row["reader_id"], row["no_lesion"], row["quality_problem"], row["duration_s"])


def _load_drawings(*, cases: list[Case], reads: dict[int, list[dict]], keys: dict[int, dict]) -> _Drawings:
    read_ids = [row["id"] for rows in reads.values() for row in rows] + [row["id"] for row in keys.values()]
    instances: dict[int, list[_InstanceRow]] = defaultdict(list)
    for row in Instance.objects.filter(series_id__in={case.series_id for case in cases}).values(*INSTANCE_FIELDS):
        instances[row["series_id"]].append(_InstanceRow(row))
    geometries: dict[int, SeriesGeometry] = {}
    frames: dict[tuple[int, int], FrameGeometry] = {}
    for series_id, rows in instances.items():
        series_frames = []
        for row in rows:
            for frame in frames_of_instance(row):
                frames[(row.pk, frame.frame)] = frame
                series_frames.append(frame)
        geometries[series_id] = series_geometry_from_frames(series_frames)
    marks: dict[int, list[dict]] = defaultdict(list)
    masks: dict[int, list[dict]] = defaultdict(list)
    for chunk in _chunks(read_ids):
        for row in Mark.objects.filter(read_id__in=chunk).values(
            "read_id", "lesion_index", "kind", "instance_id", "frame", "start_col", "start_row", "end_col", "end_row"
        ):
            marks[row["read_id"]].append(row)
    for chunk in _chunks(read_ids):
        for row in MaskSlice.objects.filter(read_id__in=chunk).values(
            "read_id", "lesion_index", "instance_id", "frame", "counts"
        ):
            masks[row["read_id"]].append(row)
    return _Drawings(geometries=geometries, frames=frames, marks=marks, masks=masks)


def _answer_keys(gold_cases: list[Case]) -> dict[int, dict]:
    """Return the current answer-key read (as a values() row) of each gold case that has one."""
    keys: dict[int, dict] = {}
    if not gold_cases:
        return keys
    for row in (
        Read.all_objects.filter(case_id__in=[case.pk for case in gold_cases], is_answer_key=True)
        .order_by("case_id", "version", "id")
        .values("id", "case_id", "reader_id", "no_lesion", "quality_problem", "duration_s", "answers")
    ):
        keys[row["case_id"]] = row  # the newest per case wins
    return keys


def _references(gold_cases: list[Case]) -> dict[int, list[ReferenceInput]]:
    references: dict[int, list[ReferenceInput]] = defaultdict(list)
    series_ids = {case.series_id for case in gold_cases}
    for ref in ReferenceLesion.objects.filter(series_id__in=series_ids).order_by("pk") if series_ids else []:
        references[ref.series_id].append(
            ReferenceInput(
                reference_id=ref.pk,
                center_mm=tuple(float(v) for v in ref.center_patient_mm),
                long_axis_mm=float(ref.long_axis_mm),
                short_axis_mm=None if ref.short_axis_mm is None else float(ref.short_axis_mm),
                label=ref.label,
                position_known=ref.source != ADMIN_REFERENCE_SOURCE,
                sop_instance_uid=ref.sop_instance_uid,
            )
        )
    return references


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    # SQLite limits the number of query parameters; 900 stays below every build's limit.
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def reader_answer_weights(task_ids: Iterable[int]) -> dict[int, dict[int, float]]:
    """Return the stored per-reader weights of answer votes (from gold answer accuracy) of the given tasks."""
    weights: dict[int, dict[int, float]] = defaultdict(dict)
    for task_id, reader_id, figures in ReaderQuality.objects.filter(task_id__in=list(task_ids)).values_list(
        "task_id", "reader_id", "figures"
    ):
        if (figures or {}).get("answer_weight") is not None:
            weights[task_id][reader_id] = float(figures["answer_weight"])
    return weights


def reader_weights(task_ids: Iterable[int]) -> dict[int, dict[int, float]]:
    """Return the stored per-reader consensus weights of the given tasks."""
    weights: dict[int, dict[int, float]] = defaultdict(dict)
    for task_id, reader_id, weight in ReaderQuality.objects.filter(task_id__in=list(task_ids)).values_list(
        "task_id", "reader_id", "weight"
    ):
        weights[task_id][reader_id] = float(weight)
    return weights


# --------------------------------------------------------------------------------------------------------------
# Storing


def _store(case_id: int, outcome: CaseOutcome | None, *, digest: str, params: ConsensusParams, n_reads: int):
    """Store one case's outcome under its hash (or find the rows of an earlier identical run); mark it current."""
    with transaction.atomic():
        existing = CaseConsensus.objects.filter(
            case_id=case_id, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION
        ).first()
        if existing is None:
            try:
                with transaction.atomic():
                    existing = CaseConsensus.objects.create(
                        case_id=case_id,
                        algorithm_version=ALGORITHM_VERSION,
                        params=params.as_json(),
                        inputs_hash=digest,
                        n_reads=n_reads,
                        summary=outcome.summary,
                        low_agreement=outcome.low_agreement,
                        answers=outcome.answers,
                        is_current=True,
                    )
                    ConsensusLesion.objects.bulk_create(_lesion_rows(existing, outcome))
            except IntegrityError:
                # Another worker stored the same inputs first; its rows are as good as ours.
                existing = CaseConsensus.objects.get(
                    case_id=case_id, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION
                )
        CaseConsensus.objects.filter(case_id=case_id, is_current=True).exclude(pk=existing.pk).update(is_current=False)
        if not existing.is_current:
            CaseConsensus.objects.filter(pk=existing.pk).update(is_current=True)
            existing.is_current = True
    return existing


def _lesion_rows(consensus: CaseConsensus, outcome: CaseOutcome) -> list[ConsensusLesion]:
    return [
        ConsensusLesion(
            consensus=consensus,
            lesion_index=lesion.lesion_index,
            support=lesion.support,
            support_fraction=lesion.support_fraction,
            accepted=lesion.accepted,
            long_axis=lesion.long_axis,
            short_axis=lesion.short_axis,
            long_axis_median_mm=lesion.long_axis_median_mm,
            long_axis_iqr_mm=lesion.long_axis_iqr_mm,
            long_axis_cv=lesion.long_axis_cv,
            short_axis_median_mm=lesion.short_axis_median_mm,
            mask_slices=lesion.mask_slices,
            mask_method=lesion.mask_method,
            members=lesion.members,
            statistics={**lesion.statistics, "anchor_mm": lesion.anchor_mm},
        )
        for lesion in outcome.lesions
    ]


def compute_case_consensus(*, case: Case, use_reader_weights: bool = False) -> CaseConsensus | None:
    """Compute (or find) the consensus of a case's current reads and make it the case's current result.

    Returns None, and leaves no current result, when the case has no current reads.
    """
    if case.task.adaptive_reads:
        # The adaptive rule weighs readers by reliability learned without gold: keep it current as reads come in.
        refresh_reader_quality_if_grown(task=case.task)
    weights = reader_weights([case.task_id]) if use_reader_weights or case.task.adaptive_reads else None
    answer_weights = reader_answer_weights([case.task_id]) if use_reader_weights else None
    inputs = load_case_inputs([case.pk], weights=weights, answer_weights=answer_weights)[case.pk]
    params = ConsensusParams.for_task(case.task, use_reader_weights=use_reader_weights)
    if not inputs.reads:
        CaseConsensus.objects.filter(case=case, is_current=True).update(is_current=False)
        return None
    digest = inputs_hash(inputs, params)
    found = CaseConsensus.objects.filter(case=case, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION).first()
    outcome = None if found else compute_case(inputs, params)
    stored = _store(case.pk, outcome, digest=digest, params=params, n_reads=len(inputs.reads))
    if params.adaptive is not None:
        _store_read_targets({case.pk: stored.summary})
    if case.is_gold:
        refresh_reader_quality(task=case.task)
    return stored


@dataclass
class TaskRecompute:
    cases: int = 0
    computed: int = 0
    unchanged: int = 0
    without_reads: int = 0
    low_agreement: int = 0


def _compute_pair(job: tuple[CaseInputs, ConsensusParams]) -> CaseOutcome:
    return compute_case(*job)


def recompute_task_consensus(
    *,
    task: Task,
    case_ids: Sequence[int] | None = None,
    use_reader_weights: bool = False,
    workers: int = 1,
    batch_size: int = 250,
) -> TaskRecompute:
    """Bring every case of a task (or the given cases) to a current consensus, then refresh reader quality.

    Cases whose inputs did not change keep their rows. `workers` > 1 spreads the
    numerical work over that many processes (the database work stays here).
    """
    ids = list(
        Case.objects.filter(task=task, **({"pk__in": list(case_ids)} if case_ids is not None else {}))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    report = TaskRecompute(cases=len(ids))
    params = ConsensusParams.for_task(task, use_reader_weights=use_reader_weights)
    weights = reader_weights([task.pk]) if use_reader_weights or task.adaptive_reads else None
    answer_weights = reader_answer_weights([task.pk]) if use_reader_weights else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) if workers > 1 else None
    try:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            inputs = load_case_inputs(batch, weights=weights, with_marks=False, answer_weights=answer_weights)
            digests = {case_id: inputs_hash(inputs[case_id], params) for case_id in batch if inputs[case_id].reads}
            known = set(
                CaseConsensus.objects.filter(
                    case_id__in=batch, algorithm_version=ALGORITHM_VERSION, inputs_hash__in=list(digests.values())
                ).values_list("case_id", "inputs_hash")
            )
            empty = [case_id for case_id in batch if not inputs[case_id].reads]
            if empty:
                CaseConsensus.objects.filter(case_id__in=empty, is_current=True).update(is_current=False)
                report.without_reads += len(empty)
            todo = [case_id for case_id, digest in digests.items() if (case_id, digest) not in known]
            if todo:
                inputs.update(load_case_inputs(todo, weights=weights, answer_weights=answer_weights))
            jobs = [(inputs[case_id], params) for case_id in todo]
            outcomes = list(pool.map(_compute_pair, jobs, chunksize=16)) if pool else [compute_case(*j) for j in jobs]
            _store_batch(dict(zip(todo, outcomes, strict=True)), digests, inputs, params)
            report.computed += len(todo)
            report.unchanged += len(digests) - len(todo)
            # Cases whose stored rows match their inputs but are not current (e.g. after a read was withdrawn).
            current = set(
                CaseConsensus.objects.filter(case_id__in=batch, is_current=True).values_list("case_id", "inputs_hash")
            )
            for case_id, digest in digests.items():
                if case_id not in todo and (case_id, digest) not in current:
                    _store(case_id, None, digest=digest, params=params, n_reads=len(inputs[case_id].reads))
            if params.adaptive is not None:
                _store_read_targets(
                    dict(
                        CaseConsensus.objects.filter(case_id__in=batch, is_current=True).values_list(
                            "case_id", "summary"
                        )
                    )
                )
    finally:
        if pool:
            pool.shutdown()
    report.low_agreement = CaseConsensus.objects.filter(case__task=task, is_current=True, low_agreement=True).count()
    refresh_reader_quality(task=task)
    return report


def _store_batch(
    outcomes: dict[int, CaseOutcome], digests: dict[int, str], inputs: dict[int, CaseInputs], params: ConsensusParams
) -> None:
    if not outcomes:
        return
    with transaction.atomic():
        CaseConsensus.objects.filter(case_id__in=list(outcomes), is_current=True).update(is_current=False)
        rows = CaseConsensus.objects.bulk_create(
            [
                CaseConsensus(
                    case_id=case_id,
                    algorithm_version=ALGORITHM_VERSION,
                    params=params.as_json(),
                    inputs_hash=digests[case_id],
                    n_reads=len(inputs[case_id].reads),
                    summary=outcome.summary,
                    low_agreement=outcome.low_agreement,
                    answers=outcome.answers,
                    is_current=True,
                )
                for case_id, outcome in outcomes.items()
            ]
        )
        lesions = []
        for row, outcome in zip(rows, outcomes.values(), strict=True):
            lesions.extend(_lesion_rows(row, outcome))
        ConsensusLesion.objects.bulk_create(lesions, batch_size=500)


def _store_read_targets(summaries: dict[int, dict]) -> None:
    """Store each adaptive case's read target from its current consensus summary (docs/consensus.md)."""
    by_target: dict[int, list[int]] = defaultdict(list)
    for case_id, summary in summaries.items():
        decision = (summary or {}).get("adaptive")
        if decision is not None:
            by_target[int(decision["target_reads"])].append(case_id)
    for target, case_ids in by_target.items():
        Case.objects.filter(pk__in=case_ids).exclude(reads_target=target).update(reads_target=target)


def stale_case_ids(*, task: Task | None = None) -> list[int]:
    """Return cases whose current consensus is missing, older than their newest read, or of an older algorithm."""
    # Cases with crowd reads (a lone answer key has nothing to agree on); the newest read, answer keys
    # included, since a new key changes the gold figures.
    cases = Case.objects.filter(pk__in=Read.objects.values("case_id"))
    if task is not None:
        cases = cases.filter(task=task)
    # Follow-up cases have their own algorithm; with own-read baselines they have no consensus at all.
    cases = cases.exclude(task__kind=Task.Kind.FOLLOW_UP, task__baseline_source=Task.BaselineSource.OWN_READ)
    newest_read = dict(cases.values("pk").annotate(newest=Max("reads__submitted_at")).values_list("pk", "newest"))
    follow_up = set(cases.filter(task__kind=Task.Kind.FOLLOW_UP).values_list("pk", flat=True))
    current = {
        row["case_id"]: row
        for row in CaseConsensus.objects.filter(case_id__in=list(newest_read), is_current=True).values(
            "case_id", "computed_at", "algorithm_version"
        )
    }
    stale = []
    for case_id, newest in newest_read.items():
        row = current.get(case_id)
        version = LONGITUDINAL_VERSION if case_id in follow_up else ALGORITHM_VERSION
        if row is None or row["algorithm_version"] != version or row["computed_at"] < newest:
            stale.append(case_id)
    return sorted(stale)


# --------------------------------------------------------------------------------------------------------------
# Reader quality


GOLD_ERROR_FLOOR_MM = 2.0
WEIGHT_RANGE = (0.2, 5.0)
# Without gold reads, a reader's weight comes from agreement with the others once they measured this many lesions.
MIN_AGREEMENT_LESIONS = 5


# An adaptive task refreshes its readers' reliability when its reads have grown by this factor since the last
# refresh (and by at least this many reads): a geometric schedule, so the whole-task work stays linear overall.
RELIABILITY_REFRESH_GROWTH = 1.25
RELIABILITY_REFRESH_MIN_READS = 20


def refresh_reader_quality_if_grown(*, task: Task) -> bool:
    """Refresh the task's reader quality when its reads grew enough since the last refresh; True when it did."""
    reads = task.cases.aggregate(total=Sum("reads_done"))["total"] or 0
    counted = ReaderQuality.objects.filter(task=task).aggregate(total=Sum("n_reads"))["total"] or 0
    if reads < max(RELIABILITY_REFRESH_MIN_READS, RELIABILITY_REFRESH_GROWTH * counted):
        return False
    refresh_reader_quality(task=task)
    return True


@dataclass
class ReaderTally:
    """What one reader's current reads and the task's current consensus rows add up to."""

    n_reads: int = 0
    durations: list[float] = field(default_factory=list)
    gold_errors: list[float] = field(default_factory=list)
    gold_matched: int = 0
    gold_missed: int = 0
    gold_false_positives: int = 0
    sens: list[float] = field(default_factory=list)
    spec: list[float] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    measured: list[float] = field(default_factory=list)
    consensus: list[float] = field(default_factory=list)
    lesions_marked: int = 0
    accepted_found: int = 0
    accepted_total: int = 0


@dataclass(frozen=True)
class ReliabilityFigures:
    """Each reader's long-axis error: RMS against gold where there is gold, else against the other readers."""

    gold_rmse: dict[int, float]
    agreement_rmse: dict[int, float]

    def weight(self, reader_id: int) -> float:
        """Inverse error variance relative to the typical reader, floored so a lucky reader is not a god."""
        floor = GOLD_ERROR_FLOOR_MM**2
        for rmse in (self.gold_rmse, self.agreement_rmse):
            if reader_id in rmse:
                typical = float(np.median(list(rmse.values())))
                return float(np.clip((floor + typical**2) / (floor + rmse[reader_id] ** 2), *WEIGHT_RANGE))
        return 1.0

    def source(self, reader_id: int) -> str:
        if reader_id in self.gold_rmse:
            return "gold"
        return "agreement" if reader_id in self.agreement_rmse else "none"


def refresh_reader_quality(*, task: Task) -> list[ReaderQuality]:
    """Recompute every reader's figures in a task from its current consensus rows and current reads."""
    tallies: dict[int, ReaderTally] = defaultdict(ReaderTally)
    _tally_reads(tallies, current_reads(list(task.cases.values_list("pk", flat=True))))
    consensus_rows = CaseConsensus.objects.filter(case__task=task, is_current=True)
    # Gold answer accuracy per question (answer keys): figures, and the weight of the reader's answer votes.
    answer_accuracy = accuracy_by_reader(
        answers["gold"] for answers in consensus_rows.values_list("answers", flat=True) if (answers or {}).get("gold")
    )
    for reader_id in answer_accuracy:
        _ = tallies[reader_id]  # readers with gold answers get a row even without other figures
    answer_weight = answer_weights(answer_accuracy)
    _tally_gold_and_acceptance(tallies, consensus_rows.values_list("summary", flat=True))
    lesion_lengths = _tally_lesions(
        tallies,
        ConsensusLesion.objects.filter(consensus__in=consensus_rows).values(
            "accepted", "long_axis_median_mm", "statistics", "members"
        ),
    )
    reliability = ReliabilityFigures(
        gold_rmse={
            reader_id: float(np.sqrt(np.mean(np.square(f.gold_errors))))
            for reader_id, f in tallies.items()
            if f.gold_errors
        },
        # Reliability without gold: RMS of each reader's length minus the other readers' median.
        agreement_rmse={
            reader_id: float(np.sqrt(np.mean(np.square(values))))
            for reader_id, values in leave_one_out_deviations(lesion_lengths).items()
            if len(values) >= MIN_AGREEMENT_LESIONS
        },
    )
    stored = []
    with transaction.atomic():
        for reader_id, f in sorted(tallies.items()):
            figures = _reader_figures(
                f,
                reader_id=reader_id,
                reliability=reliability,
                answers=answer_accuracy.get(reader_id, {}),
                answer_weight=answer_weight.get(reader_id),
            )
            quality, _ = ReaderQuality.objects.update_or_create(
                task=task,
                reader_id=reader_id,
                defaults={
                    "n_reads": f.n_reads,
                    "mean_time_s": float(np.mean(f.durations)) if f.durations else None,
                    "gold_mean_abs_error_mm": float(np.mean(np.abs(f.gold_errors))) if f.gold_errors else None,
                    "sensitivity": float(np.mean(f.sens)) if f.sens else None,
                    "specificity": float(np.mean(f.spec)) if f.spec else None,
                    "weight": reliability.weight(reader_id),
                    "figures": figures,
                },
            )
            stored.append(quality)
    return stored


def _tally_reads(tallies: dict[int, ReaderTally], reads: dict) -> None:
    for rows in reads.values():
        for row in rows:
            tally = tallies[row["reader_id"]]
            tally.n_reads += 1
            if row["duration_s"] is not None:
                tally.durations.append(row["duration_s"])


def _tally_gold_and_acceptance(tallies: dict[int, ReaderTally], summaries) -> None:
    for summary in summaries:
        gold = summary.get("gold")
        if gold:
            for reader_id, score in gold["readers"].items():
                tally = tallies[int(reader_id)]
                tally.gold_errors.extend(match["error_mm"] for match in score["matched"])
                tally.gold_matched += len(score["matched"])
                tally.gold_missed += score["missed"]
                tally.gold_false_positives += score["false_positives"]
        for reader_id in summary.get("reader_ids", []):
            tallies[reader_id].accepted_total += summary.get("n_accepted", 0)


def _tally_lesions(tallies: dict[int, ReaderTally], lesions) -> list[dict[int, float]]:
    """Count each reader's lesions, STAPLE and Dice figures; return the accepted lesions' lengths by reader."""
    lesion_lengths: list[dict[int, float]] = []
    for lesion in lesions:
        statistics = lesion["statistics"]
        reader_long_axis = statistics.get("reader_long_axis_mm") or {}
        if lesion["accepted"]:
            lesion_lengths.append({int(k): float(v) for k, v in reader_long_axis.items()})
        for member in lesion["members"]:
            tally = tallies[member["reader_id"]]
            tally.lesions_marked += 1
            if lesion["accepted"]:
                tally.accepted_found += 1
        for reader_id, values in (statistics.get("staple") or {}).get("readers", {}).items():
            if values["sensitivity"] is not None:
                tallies[int(reader_id)].sens.append(values["sensitivity"])
            if values["specificity"] is not None:
                tallies[int(reader_id)].spec.append(values["specificity"])
        for reader_id, value in (statistics.get("dice_to_consensus") or {}).items():
            tallies[int(reader_id)].dice.append(value)
        if lesion["accepted"] and lesion["long_axis_median_mm"] is not None:
            for reader_id, length in reader_long_axis.items():
                tallies[int(reader_id)].measured.append(length)
                tallies[int(reader_id)].consensus.append(lesion["long_axis_median_mm"])
    return lesion_lengths


def _reader_figures(
    f: ReaderTally, *, reader_id: int, reliability: ReliabilityFigures, answers: dict, answer_weight: float | None
) -> dict:
    gold_seen = f.gold_matched + f.gold_missed
    return {
        "gold": {
            "matched": f.gold_matched,
            "missed": f.gold_missed,
            "false_positives": f.gold_false_positives,
            "rmse_mm": reliability.gold_rmse.get(reader_id),
            "mean_error_mm": float(np.mean(f.gold_errors)) if f.gold_errors else None,
            "detection_rate": f.gold_matched / gold_seen if gold_seen else None,
        },
        "bland_altman_vs_consensus": bland_altman(f.measured, f.consensus).as_json() if f.measured else None,
        "agreement_rmse_mm": reliability.agreement_rmse.get(reader_id),
        "weight_from": reliability.source(reader_id),
        "mean_dice_to_consensus": float(np.mean(f.dice)) if f.dice else None,
        "lesions_marked": f.lesions_marked,
        "consensus_lesions_found": f.accepted_found,
        "consensus_lesions_total": f.accepted_total,
        "staple_lesions": len(f.sens),
        "answers": answers,
        "answer_weight": answer_weight,
    }
