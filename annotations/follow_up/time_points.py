"""Time points of a patient: studies in StudyDate + StudyTime order, a series per time point, follow-up cases.

A follow-up case (docs/follow-up.md) is one patient: its CaseTimePoint rows give the series read at every
study, index 0 the baseline, and its baseline lesions are the lesions every follow-up read must measure.
This module builds those cases and the `follow_up` part of the CaseForReading answer. It must never give a
reader anyone else's marks: the baseline comes from an answer key, a consensus frozen at task set-up, or
the reader's own read.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from annotations.core.geometry import frames_of_instance
from annotations.models import (
    BaselineLesion,
    Case,
    CaseTimePoint,
    ConsensusLesion,
    Mark,
    Read,
    Reader,
    ReferenceLesion,
    Task,
)
from annotations.selectors import window_presets
from viewer.models import Instance, Series, Study


class TimePointError(ValueError):
    """The series given for a follow-up case cannot form a patient's time line."""


def study_order_key(study_date: str, study_time: str, tie_breaker: str = "") -> tuple[str, str, str]:
    """Return the sort key of a study: DICOM DA then TM (both sort as text when well formed), then a tie-breaker.

    Studies without a date sort last, as they cannot be placed on the time line.
    """
    date = (study_date or "").strip()
    time = (study_time or "").strip().replace(":", "")
    return (date or "99999999", time.ljust(6, "0") if time else "000000", tie_breaker)


def iso_date(study_date: str) -> str | None:
    """Return a DICOM DA (YYYYMMDD) as YYYY-MM-DD, or None when it is not one."""
    value = (study_date or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return None


def patient_studies(*, patient_id: str) -> list[Study]:
    """Return the studies of one patient in StudyDate + StudyTime order."""
    studies = list(Study.objects.filter(patient_id=patient_id))
    return sorted(studies, key=lambda s: study_order_key(s.study_date, s.study_time, s.study_instance_uid))


@dataclass(frozen=True)
class TimelineStudy:
    study: Study
    series: list[Series]

    @property
    def iso_date(self) -> str | None:
        return iso_date(self.study.study_date)


def patient_timeline(*, patient_id: str) -> list[TimelineStudy]:
    """Return the patient's studies in time order, each with its series (by series number)."""
    studies = patient_studies(patient_id=patient_id)
    series_by_study: dict[int, list[Series]] = {study.pk: [] for study in studies}
    for series in Series.objects.filter(study__in=studies).order_by("series_number", "id"):
        series_by_study[series.study_id].append(series)
    return [TimelineStudy(study=study, series=series_by_study[study.pk]) for study in studies]


def description_similarity(a: str, b: str) -> float:
    """Return 0..1: how alike two series descriptions are (case and spacing ignored)."""
    left, right = " ".join((a or "").lower().split()), " ".join((b or "").lower().split())
    if not left and not right:
        return 1.0
    return difflib.SequenceMatcher(None, left, right).ratio()


def closest_series(*, reference: Series, candidates: Sequence[Series]) -> Series | None:
    """Return the candidate of the reference's modality whose description is closest (None when none fits).

    Ties go to the lower series number, then the older row, so the rule gives the same answer every time.
    """
    same_modality = [s for s in candidates if (s.modality or "").upper() == (reference.modality or "").upper()]
    if not same_modality:
        return None
    return max(
        same_modality,
        key=lambda s: (
            description_similarity(reference.series_description, s.series_description),
            -(s.series_number if s.series_number is not None else 1 << 30),
            -s.pk,
        ),
    )


def series_by_rule(*, baseline: Series) -> list[Series]:
    """Return the baseline and, for every later study of its patient, the series chosen by the rule."""
    patient_id = baseline.study.patient_id
    if not patient_id:
        raise TimePointError(f"series {baseline.series_instance_uid} has no PatientID, so it has no time line")
    chosen = [baseline]
    baseline_key = study_order_key(
        baseline.study.study_date, baseline.study.study_time, baseline.study.study_instance_uid
    )
    for entry in patient_timeline(patient_id=patient_id):
        key = study_order_key(entry.study.study_date, entry.study.study_time, entry.study.study_instance_uid)
        if key <= baseline_key:
            continue
        match = closest_series(reference=baseline, candidates=entry.series)
        if match is not None:
            chosen.append(match)
    return chosen


def order_time_points(series: Sequence[Series]) -> list[Series]:
    """Return the series of one patient in study time order; raise TimePointError when they cannot form one."""
    if len(series) < 2:
        raise TimePointError("a follow-up case needs a baseline and at least one follow-up series")
    patients = {s.study.patient_id for s in series}
    if len(patients) != 1 or "" in patients:
        raise TimePointError("the series of a follow-up case must belong to one patient (same PatientID)")
    studies = [s.study_id for s in series]
    if len(set(studies)) != len(studies):
        raise TimePointError("each time point must come from a different study")
    return sorted(
        series, key=lambda s: study_order_key(s.study.study_date, s.study.study_time, s.study.study_instance_uid)
    )


def time_point_label(index: int) -> str:
    return "Baseline" if index == 0 else f"Follow-up {index}"


@transaction.atomic
def create_follow_up_case(*, task: Task, series: Sequence[Series], label: str = "") -> Case:
    """Create a follow-up case of `task` whose time points are `series` in study order (the first the baseline)."""
    if not task.is_follow_up:
        raise TimePointError(f"task {task.name!r} is not a follow-up task")
    ordered = order_time_points(series)
    baseline = ordered[0]
    case = Case.objects.create(task=task, series=baseline, label=label or f"Patient {baseline.study.patient_id}")
    CaseTimePoint.objects.bulk_create(
        CaseTimePoint(
            case=case,
            index=index,
            series=s,
            label=time_point_label(index),
            study_date=s.study.study_date,
            study_time=s.study.study_time,
        )
        for index, s in enumerate(ordered)
    )
    return case


def time_points_of(case: Case) -> list[CaseTimePoint]:
    """Return the case's time points in order, with series and study loaded."""
    return list(case.time_points.select_related("series__study").order_by("index"))


def line_centre_mm(line: dict, instances: dict[str, Instance]) -> list[float] | None:
    """Return the patient position (mm) of a line's midpoint, or None when its instance is unknown."""
    instance = instances.get(line.get("sop_instance_uid"))
    if instance is None:
        return None
    frames = frames_of_instance(instance)
    frame = frames[min(max(int(line.get("frame", 1)), 1), len(frames)) - 1]
    start, end = line["start"], line["end"]
    point = frame.to_patient_mm((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    return [round(float(v), 2) for v in point]


@transaction.atomic
def freeze_consensus_baseline(*, case: Case) -> list[BaselineLesion]:
    """Copy the accepted consensus lesions of the baseline task's case on the same series into BaselineLesion rows.

    Frozen once (at task set-up), so a later consensus rerun cannot change the identities readers follow.
    """
    task = case.task
    if task.baseline_task_id is None:
        raise TimePointError("a consensus baseline needs a baseline task")
    source_case = Case.objects.filter(task_id=task.baseline_task_id, series_id=case.series_id).first()
    if source_case is None:
        return []
    lesions = ConsensusLesion.objects.filter(
        consensus__case=source_case, consensus__is_current=True, accepted=True
    ).order_by("lesion_index")
    instances = {i.sop_instance_uid: i for i in Instance.objects.filter(series_id=case.series_id)}
    case.baseline_lesions.filter(source=BaselineLesion.Source.CONSENSUS).delete()
    rows = []
    for number, lesion in enumerate(lesions, start=1):
        rows.append(
            BaselineLesion(
                case=case,
                key=f"B{number}",
                label=f"Lesion {number}",
                long_axis=lesion.long_axis,
                short_axis=lesion.short_axis,
                center_patient_mm=line_centre_mm(lesion.long_axis, instances) if lesion.long_axis else None,
                source=BaselineLesion.Source.CONSENSUS,
            )
        )
    return BaselineLesion.objects.bulk_create(rows)


def line_through_centre(instance: Instance, *, center_mm, length_mm: float) -> dict:
    """Return a read-format line of `length_mm` along the image rows, centred on a patient point of `instance`."""
    frame = frames_of_instance(instance)[0]
    offset = np.asarray(center_mm, dtype=float) - np.asarray(frame.position_mm, dtype=float)
    row_spacing, column_spacing = frame.pixel_spacing_mm
    column = float(offset @ np.asarray(frame.row_cosine)) / column_spacing
    row = float(offset @ np.asarray(frame.column_cosine)) / row_spacing
    half = length_mm / 2 / column_spacing
    start = [round(max(column - half, -0.5), 2), round(row, 2)]
    end = [round(min(column + half, instance.columns - 0.5), 2), round(row, 2)]
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": 1,
        "start": start,
        "end": end,
        "length_mm": round(frame.line_length_mm(start, end), 3),
    }


@transaction.atomic
def answer_key_from_references(*, case: Case) -> list[BaselineLesion]:
    """Make the case's baseline lesions from the baseline series' reference lesions (gold answers, known truth).

    Each becomes a line along the image rows through its centre on its slice (the middle slice when none).
    """
    instances = list(Instance.objects.filter(series_id=case.series_id).order_by("sort_position_mm", "id"))
    if not instances:
        return []
    by_uid = {instance.sop_instance_uid: instance for instance in instances}
    rows = []
    for number, reference in enumerate(ReferenceLesion.objects.filter(series_id=case.series_id).order_by("id"), 1):
        instance = by_uid.get(reference.sop_instance_uid) or instances[len(instances) // 2]
        rows.append(
            BaselineLesion(
                case=case,
                key=f"B{number}",
                label=reference.label or f"Lesion {number}",
                long_axis=line_through_centre(
                    instance, center_mm=reference.center_patient_mm, length_mm=reference.long_axis_mm
                ),
                center_patient_mm=list(reference.center_patient_mm),
                source=BaselineLesion.Source.ANSWER_KEY,
            )
        )
    return BaselineLesion.objects.bulk_create(rows)


def baseline_lesions_for(*, case: Case, reader: Reader | None) -> list[dict]:
    """Return the baseline lesions shown to this reader, in the contract's shape (docs/follow-up.md)."""
    task = case.task
    if task.baseline_source == Task.BaselineSource.OWN_READ:
        return _own_read_baseline(case=case, reader=reader)
    return [
        {
            "id": lesion.key,
            "label": lesion.label or lesion.key,
            "site": lesion.site or None,
            "is_node": lesion.is_node,
            "long_axis": lesion.long_axis,
            "short_axis": lesion.short_axis,
            "center_patient_mm": lesion.center_patient_mm,
        }
        for lesion in case.baseline_lesions.order_by("id")
    ]


def _own_read_baseline(*, case: Case, reader: Reader | None) -> list[dict]:
    task = case.task
    if reader is None or task.baseline_task_id is None:
        return []
    read = (
        Read.objects.filter(
            case__task_id=task.baseline_task_id, case__series_id=case.series_id, reader=reader, skip=False
        )
        .order_by("-version")
        .first()
    )
    if read is None:
        return []
    lines: dict[int, dict[str, dict]] = {}
    for mark in Mark.objects.filter(read=read).select_related("instance"):
        lines.setdefault(mark.lesion_index, {})[mark.kind] = {
            "sop_instance_uid": mark.instance.sop_instance_uid,
            "frame": mark.frame,
            "start": [mark.start_col, mark.start_row],
            "end": [mark.end_col, mark.end_row],
            "length_mm": round(mark.length_mm, 2),
        }
    instances = {i.sop_instance_uid: i for i in Instance.objects.filter(series_id=case.series_id)}
    answer = []
    for number in sorted(lines):
        long_axis = lines[number].get("long_axis")
        answer.append(
            {
                "id": f"B{number}",
                "label": f"Lesion {number}",
                "site": None,
                "is_node": False,
                "long_axis": long_axis,
                "short_axis": lines[number].get("short_axis"),
                "center_patient_mm": line_centre_mm(long_axis, instances) if long_axis else None,
            }
        )
    return answer


def instances_for_reading(series_id: int) -> list[dict]:
    """Return a series' instances in reading order, with the geometry the page needs to link viewports."""
    return [
        {
            "sop_instance_uid": instance.sop_instance_uid,
            "frames": instance.number_of_frames or 1,
            "rows": instance.rows,
            "columns": instance.columns,
            "pixel_spacing_mm": instance.pixel_spacing_mm,
            "image_position_patient": instance.image_position_patient,
            "image_orientation_patient": instance.image_orientation_patient,
        }
        for instance in Instance.objects.filter(series_id=series_id).order_by(
            "sort_position_mm", "instance_number", "id"
        )
    ]


def follow_up_payload(*, case: Case, reader: Reader | None) -> dict:
    """Return the `follow_up` object of CaseForReading: time points with their images, and the baseline lesions."""
    return {
        "baseline_source": case.task.baseline_source,
        "time_points": [
            {
                "index": point.index,
                "label": point.label or time_point_label(point.index),
                "study_date": iso_date(point.study_date),
                "study_time": point.study_time,
                "study_instance_uid": point.series.study.study_instance_uid,
                "series_instance_uid": point.series.series_instance_uid,
                "modality": point.series.modality,
                "frame_of_reference_uid": point.series.frame_of_reference_uid,
                "instances": instances_for_reading(point.series_id),
                "window_presets": window_presets(point.series),
            }
            for point in time_points_of(case)
        ],
        "baseline_lesions": baseline_lesions_for(case=case, reader=reader),
    }
