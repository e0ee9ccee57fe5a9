"""Consensus over time for follow-up cases: load the reads, run the pure core, store a CaseConsensus.

The pure work is services.longitudinal_core; this module loads a follow-up case's current reads (latest version
per reader, skips left out), places their lines in patient space per time point, and stores the outcome as a
CaseConsensus (summary: consensus and truth RECIST per time point, readers' categories) with one
ConsensusLesion row per lesion and time point (`statistics.time_point`, `statistics.key`), keyed by a hash of
the inputs so a rerun is harmless. It also gives a task's agreement and reader accuracy over all its cases.
It must never run on single-time-point cases (services.consensus does those).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from django.db import IntegrityError, transaction

from annotations.consensus.case_consensus import current_reads
from annotations.core import recist
from annotations.core.geometry import FrameGeometry, frames_of_instance, series_geometry_from_frames
from annotations.core.lesion_matching import ReaderLesion
from annotations.core.line_consensus import DrawnLine
from annotations.core.longitudinal_consensus import (
    ALGORITHM_VERSION,
    FollowUpReadInput,
    LesionReading,
    LongitudinalInputs,
    LongitudinalOutcome,
    compute_longitudinal,
    reader_accuracy,
    response_agreement,
)
from annotations.follow_up.time_points import baseline_lesions_for, time_points_of
from annotations.models import (
    BaselineLesion,
    Case,
    CaseConsensus,
    ConsensusLesion,
    FollowUpMeasurement,
    Mark,
    Reader,
    Task,
)
from viewer.models import Instance


def load_inputs(case: Case) -> tuple[LongitudinalInputs, list[dict]]:
    """Return the core's inputs for a follow-up case and the current read rows they came from."""
    points = time_points_of(case)
    follow_up_indices = [point.index for point in points if point.index > 0]
    frames: dict[tuple[str, int], FrameGeometry] = {}
    spacing: dict[int, float] = {}
    for point in points:
        point_frames = [f for i in Instance.objects.filter(series_id=point.series_id) for f in frames_of_instance(i)]
        frames.update({frame.key: frame for frame in point_frames})
        spacing[point.index] = series_geometry_from_frames(point_frames).slice_spacing_mm
    reads = current_reads([case.pk]).get(case.pk, [])
    read_ids = [row["id"] for row in reads]
    reader_of = {row["id"]: row["reader_id"] for row in reads}
    lines: dict[tuple[int, int], dict[str, DrawnLine]] = defaultdict(dict)
    for mark in Mark.objects.filter(read_id__in=read_ids).select_related("instance"):
        frame = frames.get((mark.instance.sop_instance_uid, mark.frame))
        if frame is None:
            continue
        start, end = (mark.start_col, mark.start_row), (mark.end_col, mark.end_row)
        lines[(mark.read_id, mark.lesion_index)][mark.kind] = DrawnLine.on_frame(
            frame, start=start, end=end, reader_id=reader_of[mark.read_id], read_id=mark.read_id
        )
    per_read_lesions: dict[int, dict[int, dict[str, LesionReading]]] = defaultdict(lambda: defaultdict(dict))
    per_read_new: dict[int, dict[int, list[ReaderLesion]]] = defaultdict(lambda: defaultdict(list))
    for m in FollowUpMeasurement.objects.filter(read_id__in=read_ids):
        drawn = lines.get((m.read_id, m.lesion_index), {})
        long_axis = drawn.get("long_axis")
        if m.is_new:
            if long_axis is not None:
                per_read_new[m.read_id][m.time_point].append(
                    ReaderLesion(
                        reader_id=reader_of[m.read_id],
                        read_id=m.read_id,
                        lesion_index=m.lesion_index,
                        anchor_mm=tuple(float(v) for v in long_axis.midpoint_mm),
                        size_mm=long_axis.length_mm,
                        long_axis=long_axis,
                        short_axis=drawn.get("short_axis"),
                    )
                )
            continue
        per_read_lesions[m.read_id][m.time_point][m.baseline_key] = LesionReading(
            status=recist.Status(m.status), long_axis=long_axis, short_axis=drawn.get("short_axis")
        )
    inputs = LongitudinalInputs(
        baseline=recist.baseline_sizes(baseline_lesions_for(case=case, reader=None)),
        reads=[
            FollowUpReadInput(
                read_id=row["id"],
                reader_id=row["reader_id"],
                lesions={index: dict(keys) for index, keys in per_read_lesions[row["id"]].items()},
                new_lesions={index: list(found) for index, found in per_read_new[row["id"]].items()},
            )
            for row in sorted(reads, key=lambda r: r["reader_id"])
        ],
        time_points=follow_up_indices,
        slice_spacing_mm=spacing,
        frames=frames,
        truth=answer_key_measurements(case, points),
        min_support=case.task.min_support,
    )
    return inputs, reads


def answer_key_measurements(case: Case, points=None) -> list[recist.TimePointMeasurements] | None:
    """Return the answer key's follow-up measurements, or None when any time point's truth is missing."""
    points = points if points is not None else time_points_of(case)
    lesions = list(BaselineLesion.objects.filter(case=case).order_by("id"))
    answer = []
    for point in points:
        if point.index == 0:
            continue
        if point.new_lesions_truth is None or not lesions:
            return None
        by_key = {}
        for lesion in lesions:
            truth = (lesion.follow_up_truth or {}).get(str(point.index))
            if not truth:
                return None
            by_key[lesion.key] = recist.LesionAtTimePoint(
                recist.Status(truth["status"]), truth.get("long_axis_mm"), truth.get("short_axis_mm")
            )
        answer.append(
            recist.TimePointMeasurements(index=point.index, lesions=by_key, new_lesions=point.new_lesions_truth)
        )
    return answer


def _inputs_hash(case: Case, inputs: LongitudinalInputs, reads: list[dict]) -> str:
    payload = {
        "reads": sorted((row["id"], row["version"]) for row in reads),
        "baseline": [(b.key, b.long_axis_mm, b.short_axis_mm, b.is_node, b.site) for b in inputs.baseline],
        "truth": [(p.index, sorted((k, str(v)) for k, v in p.lesions.items()), p.new_lesions) for p in inputs.truth]
        if inputs.truth
        else None,
        "min_support": inputs.min_support,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def compute_follow_up_consensus(*, case: Case) -> CaseConsensus | None:
    """Compute (or find) the longitudinal consensus of a follow-up case and make it current; None without reads."""
    if not case.task.is_follow_up:
        raise ValueError(f"case {case.pk} is not a follow-up case")
    if case.task.baseline_source == Task.BaselineSource.OWN_READ:
        # Each reader follows their own baseline lesions: there is no shared lesion identity to combine.
        return None
    inputs, reads = load_inputs(case)
    if not reads:
        CaseConsensus.objects.filter(case=case, is_current=True).update(is_current=False)
        return None
    digest = _inputs_hash(case, inputs, reads)
    with transaction.atomic():
        same_inputs = CaseConsensus.objects.filter(case=case, inputs_hash=digest, algorithm_version=ALGORITHM_VERSION)
        existing = same_inputs.first()
        if existing is None:
            outcome = compute_longitudinal(inputs)
            try:
                with transaction.atomic():
                    existing = CaseConsensus.objects.create(
                        case=case,
                        algorithm_version=ALGORITHM_VERSION,
                        params={"min_support": inputs.min_support, "baseline_source": case.task.baseline_source},
                        inputs_hash=digest,
                        n_reads=len(reads),
                        summary=outcome.summary(),
                        is_current=True,
                    )
                    ConsensusLesion.objects.bulk_create(_lesion_rows(existing, outcome))
            except IntegrityError:
                existing = same_inputs.get()
        CaseConsensus.objects.filter(case=case, is_current=True).exclude(pk=existing.pk).update(is_current=False)
        if not existing.is_current:
            CaseConsensus.objects.filter(pk=existing.pk).update(is_current=True)
            existing.is_current = True
    return existing


def _lesion_rows(consensus: CaseConsensus, outcome: LongitudinalOutcome) -> list[ConsensusLesion]:
    rows = []
    for number, lesion in enumerate(outcome.lesions, start=1):
        rows.append(
            ConsensusLesion(
                consensus=consensus,
                lesion_index=number,
                support=lesion.support,
                support_fraction=lesion.support / lesion.n_readers if lesion.n_readers else 0.0,
                accepted=lesion.accepted,
                long_axis=lesion.long_axis,
                short_axis=lesion.short_axis,
                long_axis_median_mm=lesion.long_axis_median_mm,
                long_axis_iqr_mm=lesion.long_axis_iqr_mm,
                short_axis_median_mm=lesion.short_axis_median_mm,
                members=[{"reader_id": reader, "length_mm": mm} for reader, mm in sorted(lesion.lengths_mm.items())],
                statistics={
                    "time_point": lesion.index,
                    "key": lesion.key,
                    "status": lesion.status,
                    "is_new": lesion.is_new,
                    "statuses": {str(reader): status for reader, status in lesion.statuses.items()},
                },
            )
        )
    return rows


def recompute_follow_up_task(*, task: Task, case_ids: list[int] | None = None) -> int:
    """Bring the follow-up task's cases (or the given ones) to a current consensus; return how many have one."""
    cases = Case.objects.select_related("task").filter(task=task)
    if case_ids is not None:
        cases = cases.filter(pk__in=case_ids)
    return sum(1 for case in cases if compute_follow_up_consensus(case=case) is not None)


def follow_up_task_agreement(*, task: Task) -> dict:
    """Return agreement of readers' categories and each reader's accuracy vs consensus and answer key."""
    subjects: list[dict[int, str]] = []
    consensus_categories: list[str | None] = []
    truth_categories: list[str | None] = []
    current = CaseConsensus.objects.filter(case__task=task, is_current=True, algorithm_version=ALGORITHM_VERSION)
    for stored in current.order_by("case_id"):
        summary = stored.summary
        consensus_by_index = {entry["index"]: entry["response"] for entry in summary.get("consensus_recist", [])}
        truth_by_index = {entry["index"]: entry["response"] for entry in summary.get("truth_recist") or []}
        by_index: dict[int, dict[int, str]] = defaultdict(dict)
        for reader, responses in summary.get("reader_responses", {}).items():
            for index, category in responses.items():
                by_index[int(index)][int(reader)] = category
        for index in sorted(by_index):
            subjects.append(by_index[index])
            consensus_categories.append(consensus_by_index.get(index))
            truth_categories.append(truth_by_index.get(index))
    names = dict(Reader.objects.filter(pk__in={r for s in subjects for r in s}).values_list("pk", "pseudonym"))
    vs_consensus = reader_accuracy(subjects, consensus_categories)
    vs_truth = reader_accuracy(subjects, truth_categories)
    return {
        "subjects": len(subjects),
        "agreement": response_agreement(subjects),
        "readers": [
            {
                "reader_id": reader,
                "pseudonym": names.get(reader, ""),
                "vs_consensus": vs_consensus.get(reader),
                "vs_answer_key": vs_truth.get(reader),
            }
            for reader in sorted({r for s in subjects for r in s})
        ],
    }
