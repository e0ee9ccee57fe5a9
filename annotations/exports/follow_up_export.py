"""Exports of follow-up tasks: lesion and response CSVs, and one TID 1500 SR per read (or consensus) and time point.

A follow-up lesion keeps one Tracking Unique Identifier at every time point, derived from the case and its
baseline identity (`B1`, ...), in every read's SR, the consensus SR and the baseline SR, as TID 1500 intends for
longitudinal tracking; a new lesion gets its own. Columns are documented in docs/exports.md ("Follow-up tasks")
and must never change meaning silently. Built from the SR builders of sr_export; readers appear as pseudonyms
unless the caller asks otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from annotations.core import recist
from annotations.core.longitudinal_consensus import ALGORITHM_VERSION
from annotations.exports import csv_export, sanitise
from annotations.exports.bundle import ManifestEntry, count_lesions, latest_reads
from annotations.exports.sources import SOFTWARE_NAME, SeriesCache, SeriesSources, reader_label
from annotations.exports.sr_export import (
    CONSENSUS_SR_SERIES_NUMBER,
    READS_SR_SERIES_NUMBER,
    LesionMeasurement,
    consensus_observer,
    evidence_for,
    finding_code,
    line_on_image,
    measurement_report_sr,
    procedure_code,
    reader_observer,
    tracking_uid,
)
from annotations.follow_up.time_points import baseline_lesions_for, iso_date, time_points_of
from annotations.models import Case, CaseConsensus, CaseTimePoint, FollowUpMeasurement, Mark, Read, Reader, Task
from annotations.reading.follow_up_reads import read_measurements
from viewer.dicom_files import READERBOARD_UID_ROOT

BASELINE_SR_SERIES_NUMBER = 9903

CASE_COLUMNS = ("task_id", "task_name", "case_id", "case_label", "patient_id", "time_point", "time_point_label",
                "study_date", "study_instance_uid", "series_instance_uid")  # fmt: skip
LESION_COLUMNS: tuple[str, ...] = (
    *CASE_COLUMNS,
    "read_id",
    "read_version",
    "is_latest_version",
    "reader",
    "reader_role",
    "lesion_index",
    "baseline_lesion",
    "is_new",
    "is_target",
    "status",
    "site",
    "long_axis_mm",
    "short_axis_mm",
    "diameter_mm",
    "sop_instance_uid",
    "frame",
    "tracking_uid",
)
RESPONSE_COLUMNS: tuple[str, ...] = (
    *CASE_COLUMNS,
    "source",
    "read_id",
    "read_version",
    "is_latest_version",
    "reader",
    "sum_mm",
    "baseline_sum_mm",
    "nadir_sum_mm",
    "change_from_baseline_pct",
    "change_from_nadir_pct",
    "new_lesions",
    "response",
)


def lesion_tracking_uid(case_id: int, baseline_key: str) -> str:
    """The tracking UID of a followed lesion: the same at every time point, in every read and the consensus."""
    return tracking_uid("follow-up", case_id, baseline_key)


def new_lesion_tracking_uid(case_id: int, owner: str, owner_id: int | str, lesion: int | str) -> str:
    return tracking_uid("follow-up-new", case_id, owner, owner_id, lesion)


def _case_rows(case: Case, task: Task) -> dict[int, dict]:
    """Return the CASE_COLUMNS of every time point of a case, by index."""
    return {
        point.index: {
            "task_id": task.pk,
            "task_name": task.name,
            "case_id": case.pk,
            "case_label": case.label,
            "patient_id": point.series.study.patient_id,
            "time_point": point.index,
            "time_point_label": point.label,
            "study_date": iso_date(point.study_date) or "",
            "study_instance_uid": point.series.study.study_instance_uid,
            "series_instance_uid": point.series.series_instance_uid,
        }
        for point in time_points_of(case)
    }


def _blank(value):
    return "" if value is None else value


def iter_lesion_rows(*, task: Task, pseudonymise: bool = True) -> Iterator[dict]:
    """Yield one row per lesion per time point per read of a follow-up task (every version), baseline included.

    A read whose stored rows cannot make its lines is left out and counted (sanitise.READS_SKIPPED).
    """
    readers: dict[int, Reader] = {}
    case_id, points = None, {}
    for read in csv_export.reads_for_export(task).select_related("case").iterator(chunk_size=200):
        if read.case_id != case_id:
            case = read.case
            case_id, points = case.pk, _case_rows(case, task)
        if read.reader_id not in readers:
            readers[read.reader_id] = Reader.objects.get(pk=read.reader_id)
        reader = readers[read.reader_id]
        yield from sanitise.rows_or_skip(
            _lesion_rows_of_read,
            what=f"the lesion rows of read {read.pk}",
            kind=sanitise.READS_SKIPPED,
            read=read,
            reader=reader,
            points=points,
            pseudonymise=pseudonymise,
        )


def _lesion_rows_of_read(*, read: Read, reader: Reader, points: dict[int, dict], pseudonymise: bool) -> Iterator[dict]:
    baseline = baseline_lesions_for(case=read.case, reader=reader)
    targets = set(recist.select_targets(recist.baseline_sizes(baseline)).targets)
    base = {
        "read_id": read.pk,
        "read_version": read.version,
        "is_latest_version": not read.has_later_version,
        "reader": reader_label(reader, pseudonymise=pseudonymise),
        "reader_role": reader.role,
    }
    for lesion in baseline:
        line = lesion.get("long_axis") or {}
        short = lesion.get("short_axis") or {}
        yield {
            **points[0],
            **base,
            "lesion_index": "",
            "baseline_lesion": lesion["id"],
            "is_new": False,
            "is_target": lesion["id"] in targets,
            "status": "baseline",
            "site": lesion.get("site") or "",
            "long_axis_mm": _blank(line.get("length_mm")),
            "short_axis_mm": _blank(short.get("length_mm")),
            "diameter_mm": _blank(
                recist.diameter_mm(
                    is_node=bool(lesion.get("is_node")),
                    long_axis_mm=line.get("length_mm"),
                    short_axis_mm=short.get("length_mm"),
                )
            ),
            "sop_instance_uid": line.get("sop_instance_uid", ""),
            "frame": line.get("frame", ""),
            "tracking_uid": lesion_tracking_uid(read.case_id, lesion["id"]),
        }
    marks = defaultdict(dict)
    for mark in Mark.objects.filter(read=read).select_related("instance"):
        marks[mark.lesion_index][mark.kind] = mark
    node_keys = {lesion["id"] for lesion in baseline if lesion.get("is_node")}
    for m in FollowUpMeasurement.objects.filter(read=read).order_by("time_point", "lesion_index"):
        long_axis, short_axis = marks[m.lesion_index].get("long_axis"), marks[m.lesion_index].get("short_axis")
        long_mm = long_axis.length_mm if long_axis else None
        short_mm = short_axis.length_mm if short_axis else None
        yield {
            **points[m.time_point],
            **base,
            "lesion_index": m.lesion_index,
            "baseline_lesion": m.baseline_key,
            "is_new": m.is_new,
            "is_target": m.baseline_key in targets,
            "status": m.status,
            "site": m.site,
            "long_axis_mm": _blank(None if long_mm is None else round(long_mm, 2)),
            "short_axis_mm": _blank(None if short_mm is None else round(short_mm, 2)),
            "diameter_mm": _blank(
                recist.diameter_mm(is_node=m.baseline_key in node_keys, long_axis_mm=long_mm, short_axis_mm=short_mm)
            ),
            "sop_instance_uid": long_axis.instance.sop_instance_uid if long_axis else "",
            "frame": long_axis.frame if long_axis else "",
            "tracking_uid": lesion_tracking_uid(read.case_id, m.baseline_key)
            if m.baseline_key
            else new_lesion_tracking_uid(read.case_id, "read", read.pk, m.lesion_index),
        }


def iter_response_rows(*, task: Task, pseudonymise: bool = True) -> Iterator[dict]:
    """Yield one row per patient, time point and read (every version), then the consensus and the answer key.

    A read (or a consensus) whose stored rows cannot be assessed is left out and counted.
    """
    readers: dict[int, Reader] = {}
    for case in Case.objects.filter(task=task).order_by("pk"):
        points = _case_rows(case, task)
        for read in csv_export.reads_for_export(task).filter(case=case, skip=False):
            if read.reader_id not in readers:
                readers[read.reader_id] = Reader.objects.get(pk=read.reader_id)
            reader = readers[read.reader_id]
            yield from sanitise.rows_or_skip(
                _response_rows_of_read,
                what=f"the response rows of read {read.pk}",
                kind=sanitise.READS_SKIPPED,
                read=read,
                case=case,
                reader=reader,
                points=points,
                pseudonymise=pseudonymise,
            )
        consensus = CaseConsensus.objects.filter(
            case=case, is_current=True, algorithm_version=ALGORITHM_VERSION
        ).first()
        if consensus is None:
            continue
        yield from sanitise.rows_or_skip(
            _consensus_response_rows,
            what=f"the response rows of consensus {consensus.pk}",
            kind=sanitise.CONSENSUS_SKIPPED,
            consensus=consensus,
            points=points,
        )


def _response_rows_of_read(
    *, read: Read, case: Case, reader: Reader, points: dict[int, dict], pseudonymise: bool
) -> Iterator[dict]:
    baseline = recist.baseline_sizes(baseline_lesions_for(case=case, reader=reader))
    for result in recist.assess(baseline, read_measurements(read)):
        yield {
            **points[result.index],
            "source": "read",
            "read_id": read.pk,
            "read_version": read.version,
            "is_latest_version": not read.has_later_version,
            "reader": reader_label(reader, pseudonymise=pseudonymise),
            **_result_fields(result.as_dict()),
        }


def _consensus_response_rows(*, consensus: CaseConsensus, points: dict[int, dict]) -> Iterator[dict]:
    for source, key in (("consensus", "consensus_recist"), ("answer_key", "truth_recist")):
        for entry in sanitise.mapping(consensus.summary).get(key) or []:
            yield {
                **points[entry["index"]],
                "source": source,
                "read_id": "",
                "read_version": "",
                "is_latest_version": "",
                "reader": "",
                **_result_fields(entry),
            }


def _result_fields(entry: dict) -> dict:
    return {
        name: _blank(entry.get(name))
        for name in ("sum_mm", "baseline_sum_mm", "nadir_sum_mm", "change_from_baseline_pct",
                     "change_from_nadir_pct", "new_lesions", "response")
    }  # fmt: skip


# --- DICOM SR ------------------------------------------------------------------------------------


def _lesion(sources: SeriesSources, label: str, uid: str, long_axis: dict | None, short_axis: dict | None):
    def on_image(line: dict | None):
        if not line:
            return None
        instance = sources.by_uid(line["sop_instance_uid"])
        return line_on_image(
            instance, frame=int(line.get("frame", 1)), start=line["start"], end=line["end"], length_mm=line["length_mm"]
        )

    long_line = on_image(long_axis)
    return LesionMeasurement(
        label=label, tracking_uid=uid, long_axis=long_line, short_axis=on_image(short_axis) if long_line else None
    )


def _report(
    *, lesions, observer, task: Task, sources: SeriesSources, series_uid: str, number: int, series_number: int,
    description: str, algorithm=None,
) -> hd.sr.Comprehensive3DSR | None:  # fmt: skip
    lesions = [lesion for lesion in lesions if lesion.long_axis is not None]
    if not lesions:
        return None
    lines = [line for lesion in lesions for line in (lesion.long_axis, lesion.short_axis) if line is not None]
    return measurement_report_sr(
        lesions=lesions,
        observation_context=observer,
        finding=finding_code(task.finding),
        procedure=procedure_code(sources.series.modality),
        evidence=evidence_for(sources=sources, instances=[sources.by_uid(line.sop_instance_uid) for line in lines]),
        series_instance_uid=series_uid,
        series_number=series_number,
        instance_number=number,
        series_description=description,
        algorithm=algorithm,
    )


def _mark_line(mark: Mark | None) -> dict | None:
    if mark is None:
        return None
    return {
        "sop_instance_uid": mark.instance.sop_instance_uid,
        "frame": mark.frame,
        "start": [mark.start_col, mark.start_row],
        "end": [mark.end_col, mark.end_row],
        "length_mm": mark.length_mm,
    }


def sr_for_read_time_point(
    *, read: Read, point: CaseTimePoint, task: Task, sources: SeriesSources, series_uid: str, number: int,
    pseudonymise: bool = True,
) -> hd.sr.Comprehensive3DSR | None:  # fmt: skip
    """Return the TID 1500 report of one read at one follow-up time point (None when nothing was measured)."""
    marks: dict[int, dict[str, Mark]] = defaultdict(dict)
    for mark in Mark.objects.filter(read=read, instance__series_id=point.series_id).select_related("instance"):
        marks[mark.lesion_index][mark.kind] = mark
    lesions = []
    for m in FollowUpMeasurement.objects.filter(read=read, time_point=point.index).order_by("lesion_index"):
        drawn = marks.get(m.lesion_index, {})
        if m.is_new:
            label, uid = (
                f"New lesion (read {read.pk} lesion {m.lesion_index})",
                new_lesion_tracking_uid(read.case_id, "read", read.pk, m.lesion_index),
            )
        else:
            label, uid = f"Lesion {m.baseline_key}", lesion_tracking_uid(read.case_id, m.baseline_key)
        lesions.append(
            _lesion(sources, label, uid, _mark_line(drawn.get("long_axis")), _mark_line(drawn.get("short_axis")))
        )
    return _report(
        lesions=lesions,
        observer=reader_observer(read.reader, pseudonymise=pseudonymise),
        task=task,
        sources=sources,
        series_uid=series_uid,
        number=number,
        series_number=READS_SR_SERIES_NUMBER,
        description=f"Readerboard follow-up read, {point.label}: {task.name}",
    )


def sr_for_consensus_time_point(
    *, consensus: CaseConsensus, point: CaseTimePoint, task: Task, sources: SeriesSources, series_uid: str,
    number: int,
) -> hd.sr.Comprehensive3DSR | None:  # fmt: skip
    """Return the TID 1500 report of a follow-up case's consensus at one time point."""
    lesions = []
    for row in consensus.lesions.filter(accepted=True, statistics__time_point=point.index).order_by("lesion_index"):
        key = row.statistics.get("key", "")
        if row.statistics.get("is_new"):
            label, uid = f"New lesion {key}", new_lesion_tracking_uid(consensus.case_id, "consensus", key, "")
        else:
            label, uid = f"Lesion {key}", lesion_tracking_uid(consensus.case_id, key)
        lesions.append(_lesion(sources, label, uid, row.long_axis, row.short_axis))
    observer, algorithm = consensus_observer(consensus)
    return _report(
        lesions=lesions,
        observer=observer,
        task=task,
        sources=sources,
        series_uid=series_uid,
        number=number,
        series_number=CONSENSUS_SR_SERIES_NUMBER,
        description=f"Readerboard follow-up consensus, {point.label}: {task.name}",
        algorithm=algorithm,
    )


def baseline_observer(task: Task) -> hd.sr.ObservationContext:
    """The device that reports the baseline lesions followed (an answer key or a frozen consensus)."""
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(prefix=READERBOARD_UID_ROOT, entropy_srcs=["readerboard-baseline-device"]),
                name="Readerboard baseline",
                manufacturer_name=SOFTWARE_NAME,
                model_name=sanitise.dicom_text(f"baseline {task.baseline_source}", "LO"),
            ),
        )
    )


def sr_for_baseline(
    *, case: Case, task: Task, sources: SeriesSources, series_uid: str
) -> hd.sr.Comprehensive3DSR | None:
    """Return the TID 1500 report of the lesions followed (time point 0), with the tracking UIDs of every time point."""
    lesions = [
        _lesion(sources, f"Lesion {lesion['id']}", lesion_tracking_uid(case.pk, lesion["id"]), lesion["long_axis"],
                lesion["short_axis"])
        for lesion in baseline_lesions_for(case=case, reader=None)
    ]  # fmt: skip
    return _report(
        lesions=lesions,
        observer=baseline_observer(task),
        task=task,
        sources=sources,
        series_uid=series_uid,
        number=1,
        series_number=BASELINE_SR_SERIES_NUMBER,
        description=f"Readerboard baseline lesions followed: {task.name}",
    )


def sr_steps(task: Task) -> int:
    """How many SR documents a follow-up task's export may hold, for progress."""
    points = CaseTimePoint.objects.filter(case__task=task, index__gt=0).count()
    return latest_reads(task).count() + points + Case.objects.filter(task=task).count()


class _SeriesPlacer:
    """One SR series per case, time point and author kind (DICOM series never span studies), numbered from 1."""

    def __init__(self) -> None:
        self._uids: dict[tuple[int, str], str] = {}
        self._numbers: dict[tuple[int, str], int] = defaultdict(int)

    def __call__(self, index: int, role: str) -> tuple[str, int]:
        key = (index, role)
        self._uids.setdefault(key, generate_uid(prefix=READERBOARD_UID_ROOT))
        self._numbers[key] += 1
        return self._uids[key], self._numbers[key]


def iter_follow_up_srs(*, task: Task, pseudonymise: bool = True, tick=None) -> Iterator[tuple[ManifestEntry, Dataset]]:
    """Yield (manifest entry, SR) per latest read and time point, per consensus time point, and the baseline."""
    cache = SeriesCache(size=8)

    def entry(
        ds, *, file: str, kind: str, case: Case, point: CaseTimePoint, read=None, consensus=None
    ) -> ManifestEntry:
        return ManifestEntry(
            file=file,
            kind=kind,
            case_id=case.pk,
            case_label=case.label,
            read_id=read.pk if read else "",
            read_version=read.version if read else "",
            reader=reader_label(read.reader, pseudonymise=pseudonymise) if read else "",
            consensus_id=consensus.pk if consensus else "",
            algorithm_version=consensus.algorithm_version if consensus else "",
            n_lesions=count_lesions(ds, "sr"),
            sop_instance_uid=ds.SOPInstanceUID,
            series_instance_uid=ds.SeriesInstanceUID,
            source_series_instance_uid=point.series.series_instance_uid,
        )

    for case in Case.objects.filter(task=task).order_by("pk"):
        points = time_points_of(case)
        place = _SeriesPlacer()

        for read in latest_reads(task).filter(case=case):
            for point in points[1:]:
                series_uid, number = place(point.index, "reads")
                ds = sanitise.or_skip(
                    sr_for_read_time_point, what=f"the SR of read {read.pk} at time point {point.index}",
                    kind=sanitise.DOCUMENTS_SKIPPED, read=read, point=point, task=task,
                    sources=cache.get(point.series), series_uid=series_uid, number=number, pseudonymise=pseudonymise,
                )  # fmt: skip
                if ds is not None:
                    file = f"sr/case-{case.pk}/tp-{point.index}/read-{read.pk}-v{read.version}.dcm"
                    yield entry(ds, file=file, kind="sr_read", case=case, point=point, read=read), ds
            if tick:
                tick(1)
        consensus = CaseConsensus.objects.filter(
            case=case, is_current=True, algorithm_version=ALGORITHM_VERSION
        ).first()
        if consensus is not None:
            for point in points[1:]:
                series_uid, number = place(point.index, "consensus")
                ds = sanitise.or_skip(
                    sr_for_consensus_time_point, what=f"the SR of consensus {consensus.pk} at time point {point.index}",
                    kind=sanitise.DOCUMENTS_SKIPPED, consensus=consensus, point=point, task=task,
                    sources=cache.get(point.series), series_uid=series_uid, number=number,
                )  # fmt: skip
                if ds is not None:
                    file = f"sr/case-{case.pk}/tp-{point.index}/consensus.dcm"
                    yield entry(ds, file=file, kind="sr_consensus", case=case, point=point, consensus=consensus), ds
                if tick:
                    tick(1)
        if task.baseline_source != Task.BaselineSource.OWN_READ:
            series_uid, _ = place(0, "baseline")
            ds = sanitise.or_skip(
                sr_for_baseline,
                what=f"the baseline SR of case {case.pk}",
                kind=sanitise.DOCUMENTS_SKIPPED,
                case=case,
                task=task,
                sources=cache.get(points[0].series),
                series_uid=series_uid,
            )
            if ds is not None:
                file = f"sr/case-{case.pk}/tp-0/baseline.dcm"
                yield entry(ds, file=file, kind="sr_baseline", case=case, point=points[0]), ds
        if tick:
            tick(1)
