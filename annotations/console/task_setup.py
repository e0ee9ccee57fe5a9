"""Create and edit tasks from the console: settings, the cases they cover and gold-standard answers.

A task's cases are the union of the series picked one by one and every series of
the picked collections. Editing never deletes a case that has reads (reads are
evidence); it reports it as kept instead. Gold answers entered as lengths become
ReferenceLesion rows with source "admin"; synthetic ground truth is never touched.
Questions are saved through annotations.questions.services, so editing those of a
task with reads makes a new version. Whenever a task becomes open (created open, or reopened) the image cache of its
series is warmed by a Celery task queued after the commit, so the first reader
does not pay the decode; this module never decodes images itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction

from annotations.consensus.case_consensus import ADMIN_REFERENCE_SOURCE
from annotations.consensus.tasks import recompute_task_consensus
from annotations.follow_up import time_points
from annotations.models import Case, Read, ReferenceLesion, Task
from annotations.models.tasks import Tool
from annotations.questions.services import current_question_set, save_questions
from viewer.models import Instance, Series
from viewer.tasks import warm_series_cache

TASK_FIELDS = (
    "name",
    "instructions_md",
    "tools",
    "reads_per_case",
    "adaptive_reads",
    "min_reads",
    "max_lesions_per_case",
    "consensus_method",
    "min_support",
    "finding",
    "is_open",
    "kind",
    "baseline_source",
    "baseline_task",
)


@dataclass(frozen=True)
class ReferenceAnswer:
    """A gold-standard lesion typed in by an admin: lengths in mm, optionally the slice it is measured on."""

    series_id: int
    long_axis_mm: float
    short_axis_mm: float | None = None
    label: str = ""
    sop_instance_uid: str = ""


@dataclass
class TaskSaveResult:
    task: Task
    cases_added: int = 0
    cases_removed: int = 0
    cases_kept_with_reads: list[str] = field(default_factory=list)
    references_saved: int = 0
    question_version: int | None = None
    new_question_version: bool = False


def selected_series_ids(*, series_ids: Iterable[int], collection_ids: Iterable[int]) -> list[int]:
    """Return the ids of the picked series plus every series of the picked collections, in a stable order."""
    in_collections = Series.objects.filter(study__collection_id__in=list(collection_ids)).values_list("id", flat=True)
    ids = set(series_ids) | set(in_collections)
    return list(
        Series.objects.filter(id__in=ids)
        .order_by("study__collection__name", "study__patient_id", "study__study_date", "series_number", "id")
        .values_list("id", flat=True)
    )


def validate_tools(tools: Iterable[str]) -> list[str]:
    """Return the tools in canonical order; raise ValueError if none lets a reader answer."""
    chosen = [str(tool) for tool in Tool if str(tool) in set(tools)]
    unknown = set(tools) - {str(tool) for tool in Tool}
    if unknown:
        raise ValueError(f"unknown tool(s): {', '.join(sorted(unknown))}")
    if not {Tool.LONG_AXIS, Tool.BIDIRECTIONAL, Tool.MASK} & set(chosen):
        raise ValueError("choose at least one drawing tool (long axis, bidirectional or mask)")
    return chosen


def slice_centre_mm(instance: Instance) -> list[float]:
    """Return the patient coordinates (mm) of the centre of an instance's first frame."""
    position = np.array(instance.image_position_patient or [0.0, 0.0, 0.0], dtype=float)
    orientation = instance.image_orientation_patient or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    row_direction, column_direction = np.array(orientation[:3], float), np.array(orientation[3:], float)
    row_spacing, column_spacing = instance.pixel_spacing_mm or [1.0, 1.0]
    centre = (
        position
        + row_direction * column_spacing * (instance.columns - 1) / 2
        + column_direction * row_spacing * (instance.rows - 1) / 2
    )
    return [round(float(v), 3) for v in centre]


def _reference_row(answer: ReferenceAnswer) -> ReferenceLesion:
    if not 0 < answer.long_axis_mm <= 1000:
        raise ValueError(f"long axis {answer.long_axis_mm} mm must be between 0 and 1000 mm")
    if answer.short_axis_mm is not None and not 0 < answer.short_axis_mm <= answer.long_axis_mm:
        raise ValueError(f"short axis {answer.short_axis_mm} mm must be positive and at most the long axis")
    instances = Instance.objects.filter(series_id=answer.series_id)
    if answer.sop_instance_uid:
        instance = instances.filter(sop_instance_uid=answer.sop_instance_uid).first()
        if instance is None:
            raise ValueError(f"instance {answer.sop_instance_uid} is not in series {answer.series_id}")
    else:
        ordered = list(instances.order_by("sort_position_mm", "instance_number", "id"))
        if not ordered:
            raise ValueError(f"series {answer.series_id} has no instances")
        instance = ordered[len(ordered) // 2]
    diameters = [answer.long_axis_mm] + ([answer.short_axis_mm] if answer.short_axis_mm else [])
    return ReferenceLesion(
        series_id=answer.series_id,
        source=ADMIN_REFERENCE_SOURCE,
        label=answer.label[:64],
        # Typed-in answers carry lengths, not a position: the slice centre stands in for the lesion centre,
        # and consensus matches readers to them by slice and length instead (docs/consensus.md).
        center_patient_mm=slice_centre_mm(instance),
        diameters_mm=diameters,
        long_axis_mm=answer.long_axis_mm,
        short_axis_mm=answer.short_axis_mm,
        # Only a slice the admin chose restricts matching; without one any slice may hold the lesion.
        sop_instance_uid=answer.sop_instance_uid,
    )


@transaction.atomic
def save_task(
    *,
    task: Task | None,
    settings: dict,
    series_ids: list[int],
    gold_series_ids: Iterable[int],
    references: list[ReferenceAnswer] | None,
    user,
    questions: tuple[list[dict], list[dict]] | None = None,
) -> TaskSaveResult:
    """Create or update a task, its cases, gold answers and questions; raise ValueError naming what is wrong.

    `questions` is (lesion questions, case questions); None leaves the task's questions alone.
    Changed questions of a task that has reads go into a new version (annotations.questions.services).
    """
    if not series_ids:
        raise ValueError("pick at least one series or collection")
    gold = set(gold_series_ids)
    if not gold <= set(series_ids):
        raise ValueError("gold-standard cases must be among the task's series")
    values = _checked_task_values(task=task, settings=settings)
    # The form has already copied its values onto `task`, so the stored row says whether it was open.
    was_open = task is not None and Task.objects.filter(pk=task.pk, is_open=True).exists()
    task = _store_task_values(task=task, values=values, user=user)
    result = TaskSaveResult(task=task)

    existing = {case.series_id: case for case in Case.objects.filter(task=task)}
    _remove_unpicked_cases(task=task, existing=existing, series_ids=series_ids, result=result)
    next_number = _next_case_number(cases=existing.values())
    if task.is_follow_up:
        added_series_ids = _add_follow_up_cases(
            task=task, existing=existing, series_ids=series_ids, next_number=next_number, result=result
        )
    else:
        added_series_ids = _add_single_cases(
            task=task, existing=existing, series_ids=series_ids, gold=gold, next_number=next_number, result=result
        )

    if references is not None:
        result.references_saved = _replace_reference_answers(references=references, gold=gold)
    if questions is not None:
        _save_task_questions(task=task, questions=questions, user=user, result=result)
    if task.is_open:
        # A task that was already open only needs its new series warmed.
        warm_series_ids(series_ids=series_ids if not was_open else added_series_ids)
    return result


def _checked_task_values(*, task: Task | None, settings: dict[str, Any]) -> dict[str, Any]:
    """Return the task fields given in `settings`, tools canonical; raise ValueError if they do not fit together."""
    values = {key: settings[key] for key in TASK_FIELDS if key in settings}
    values["tools"] = validate_tools(values.get("tools", []))
    # A field not given falls back to the task's value (or the default), so an edit is checked as a whole.
    reads_per_case = values.get("reads_per_case", task.reads_per_case if task else 3)
    if values.get("min_support") and values["min_support"] > reads_per_case:
        raise ValueError(f"minimum support {values['min_support']} exceeds reads per case {reads_per_case}")
    if values.get("adaptive_reads") and values.get("min_reads", 2) > reads_per_case:
        raise ValueError(f"minimum reads {values['min_reads']} exceed the most reads per case {reads_per_case}")
    kind = values.get("kind", task.kind if task else Task.Kind.SINGLE)
    # Compare with the stored row: the form has already copied the new kind onto `task`.
    if task is not None and kind != Task.objects.get(pk=task.pk).kind and Case.objects.filter(task=task).exists():
        raise ValueError("a task's kind cannot change once it has cases")
    if kind == Task.Kind.FOLLOW_UP and values.get("adaptive_reads"):
        raise ValueError("adaptive reads are for single-time-point tasks; give a follow-up task fixed reads per case")
    needs_baseline_task = values.get("baseline_source") in (Task.BaselineSource.CONSENSUS, Task.BaselineSource.OWN_READ)
    if kind == Task.Kind.FOLLOW_UP and needs_baseline_task and not values.get("baseline_task"):
        raise ValueError("a consensus or own-read baseline needs the baseline task")
    return values


def _store_task_values(*, task: Task | None, values: dict[str, Any], user) -> Task:
    """Return the task created from `values` (by `user`), or `task` updated with them and saved."""
    if task is None:
        return Task.objects.create(created_by=user, **values)
    for key, value in values.items():
        setattr(task, key, value)
    task.save()
    return task


def _remove_unpicked_cases(
    *, task: Task, existing: dict[int, Case], series_ids: list[int], result: TaskSaveResult
) -> None:
    """Delete the task's cases whose series is no longer picked, keeping (and reporting in `result`) those read."""
    # Answer keys are evidence too (and protect their case), so a case with one is kept like a read case.
    read_case_ids = set(Read.all_objects.filter(case__task=task).values_list("case_id", flat=True))
    for series_id, case in existing.items():
        if series_id in series_ids:
            continue
        if case.id in read_case_ids:
            result.cases_kept_with_reads.append(str(case))
        else:
            case.delete()
            result.cases_removed += 1


def _next_case_number(*, cases: Iterable[Case]) -> int:
    """Return the number after the highest "Case N" label among `cases` (1 if none)."""
    numbers = [
        int(case.label.removeprefix("Case "))
        for case in cases
        if case.label.startswith("Case ") and case.label.removeprefix("Case ").isdigit()
    ]
    return max(numbers, default=0) + 1


def _add_follow_up_cases(
    *, task: Task, existing: dict[int, Case], series_ids: list[int], next_number: int, result: TaskSaveResult
) -> list[int]:
    """Create a follow-up case per newly picked patient; return the series ids those cases cover."""
    added_series_ids: list[int] = []
    for group in _patient_groups(series_ids):
        if group[0].pk in existing:
            continue
        added_series_ids += [series.pk for series in group]
        # Labels are seen by readers: a running number, never patient identifiers.
        _create_follow_up_case(task=task, series=group, label=f"Case {next_number}")
        next_number += 1
        result.cases_added += 1
    return added_series_ids


def _add_single_cases(
    *,
    task: Task,
    existing: dict[int, Case],
    series_ids: list[int],
    gold: set[int],
    next_number: int,
    result: TaskSaveResult,
) -> list[int]:
    """Create a case per newly picked series and update the gold flag of kept ones; return the added series ids."""
    added_series_ids: list[int] = []
    for series_id in series_ids:
        case = existing.get(series_id)
        if case is None:
            added_series_ids.append(series_id)
            # Labels are seen by readers: a running number, never patient identifiers.
            Case.objects.create(task=task, series_id=series_id, label=f"Case {next_number}", is_gold=series_id in gold)
            next_number += 1
            result.cases_added += 1
        elif case.is_gold != (series_id in gold):
            case.is_gold = series_id in gold
            case.save(update_fields=["is_gold"])
    return added_series_ids


def _replace_reference_answers(*, references: list[ReferenceAnswer], gold: set[int]) -> int:
    """Replace the admin's reference lesions of the gold series with `references`; return how many were saved."""
    answered = {answer.series_id for answer in references}
    if not answered <= gold:
        raise ValueError("reference answers are only for gold-standard cases")
    ReferenceLesion.objects.filter(series_id__in=gold, source=ADMIN_REFERENCE_SOURCE).delete()
    rows = [_reference_row(answer) for answer in references]
    ReferenceLesion.objects.bulk_create(rows)
    return len(rows)


def _save_task_questions(*, task: Task, questions: tuple[list[dict], list[dict]], user, result: TaskSaveResult) -> None:
    """Save the task's (lesion, case) questions, record the version in `result`, queue consensus if they changed."""
    before = current_question_set(task)
    saved = save_questions(task=task, lesion=questions[0], case=questions[1], user=user)
    result.question_version = saved.version if saved else None
    result.new_question_version = saved is not None and (before is None or saved.pk != before.pk)
    changed = saved is not None and (before is None or saved.pk != before.pk or _edited(before, saved))
    if changed and Read.objects.filter(case__task=task).exists():
        # Consensus answers follow the current version; recompute once the new questions are committed.
        task_id = task.pk
        transaction.on_commit(lambda: _queue_task_consensus(task_id), robust=True)


def _patient_groups(series_ids: list[int]) -> list[list[Series]]:
    """Group picked series by patient, each group in study order (the baseline first)."""
    groups: dict[str, list[Series]] = {}
    for series in Series.objects.select_related("study").filter(pk__in=series_ids).order_by("pk"):
        # A series without PatientID has no time line: alone in its group, refused when the case is made.
        key = series.study.patient_id or f"no-patient-{series.pk}"
        groups.setdefault(key, []).append(series)
    ordered = []
    for group in groups.values():
        ordered.append(
            sorted(
                group,
                key=lambda s: time_points.study_order_key(
                    s.study.study_date, s.study.study_time, s.study.study_instance_uid
                ),
            )
        )
    return sorted(ordered, key=lambda group: group[0].pk)


def _create_follow_up_case(*, task: Task, series: list[Series], label: str) -> Case:
    """Create a follow-up case of one patient's picked series; one picked series is the baseline of the rule.

    Several picked series of one patient are the admin's choice of time points (one per study); a single one
    gets, by the rule, one series per later study of the patient (same modality, closest description).
    """
    if len(series) == 1:
        baseline = series[0]
        series = time_points.series_by_rule(baseline=baseline)
        if len(series) < 2:
            raise ValueError(
                f"series #{baseline.pk} ({baseline.study.patient_id or 'no patient id'}) has no later study "
                f"of the same modality to follow up"
            )
    try:
        case = time_points.create_follow_up_case(task=task, series=series, label=label)
    except time_points.TimePointError as error:
        raise ValueError(str(error)) from error
    if task.baseline_source == Task.BaselineSource.CONSENSUS:
        time_points.freeze_consensus_baseline(case=case)
    elif task.baseline_source == Task.BaselineSource.ANSWER_KEY:
        time_points.answer_key_from_references(case=case)
    return case


def _edited(before, saved) -> bool:
    return (before.lesion_questions, before.case_questions) != (saved.lesion_questions, saved.case_questions)


def _queue_task_consensus(task_id: int) -> None:
    recompute_task_consensus.delay(task_id)


@transaction.atomic
def set_task_open(*, task: Task, is_open: bool) -> Task:
    """Open or close a task for reading; opening a closed task queues the warming of its series' images."""
    was_open = Task.objects.filter(pk=task.pk, is_open=True).exists()
    task.is_open = is_open
    task.save(update_fields=["is_open"])
    if is_open and not was_open:
        warm_series_ids(series_ids=list(task.cases.values_list("series_id", flat=True)))
    return task


def warm_series_ids(*, series_ids: Iterable[int]) -> None:
    """Queue viewer.tasks.warm_series_cache for each series once the surrounding transaction commits."""
    for series_id in sorted(set(series_ids)):
        # Bind the id now: the lambda runs after the loop has moved on.
        transaction.on_commit(lambda series_id=series_id: warm_series_cache.delay(series_id), robust=True)
