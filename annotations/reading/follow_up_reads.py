"""Follow-up reads: validation and storage of the `time_points` read document, and its RECIST result.

A follow-up read (docs/follow-up.md) measures every baseline lesion of the case again at each follow-up time
point, on that time point's series, and adds new lesions. Validation shares the envelope and line parsing of
reading.documents (one parser for lines, lengths and frames); storing is reading.submission's idempotent,
versioned store, with follow-up rows (FollowUpMeasurement) written beside the read's Mark rows. This module
must never accept a line on another time point's series, nor a read that leaves a baseline lesion out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from annotations.core import recist
from annotations.core.field_checks import SMALL_INT_MAX, text_problem, whole_number_in
from annotations.follow_up.time_points import baseline_lesions_for, time_points_of
from annotations.models import Case, FollowUpMeasurement, Mark, Read, Reader
from annotations.models.follow_up import FollowUpStatus
from annotations.reading.documents import (
    LESION_NUMBER_PROBLEM,
    MAX_LESIONS,
    Fail,
    ParsedLine,
    ParsedRead,
    ReadEnvelope,
    ReadRules,
    ReadValidationError,
    ValidatedRead,
    parse_envelope,
    parse_lesion_lines,
)
from annotations.reading.rules import rules_for_series

TOP_LEVEL_FIELDS = {"client_uuid", "case", "started_at", "duration_s", "flags", "comment", "time_points"}
REQUIRED_FIELDS = ("client_uuid", "case", "started_at", "duration_s", "flags", "time_points")
TIME_POINT_FIELDS = {"index", "lesions"}
LESION_FIELDS = {"lesion", "baseline_lesion", "new", "status", "long_axis", "short_axis", "site"}
MAX_SITE_CHARS = 64
STATUSES = {status.value for status in FollowUpStatus}


@dataclass(frozen=True)
class ParsedMeasurement:
    time_point: int
    lesion_index: int
    baseline_key: str
    is_new: bool
    status: str
    site: str


def validate_for_case(*, case: Case, document: Any, reader: Reader) -> ValidatedRead:
    """Check a follow-up read of the case against every time point's series and the reader's baseline."""
    points = time_points_of(case)
    baseline_keys = [lesion["id"] for lesion in baseline_lesions_for(case=case, reader=reader)]
    rules_by_index = {point.index: rules_for_series(task=case.task, series_id=point.series_id) for point in points}
    parsed, measurements = validate_follow_up_document(
        document, rules_by_index=rules_by_index, baseline_keys=baseline_keys
    )
    instance_pks = {uid: geometry.pk for rules in rules_by_index.values() for uid, geometry in rules.instances.items()}

    def store_measurements(read: Read) -> None:
        FollowUpMeasurement.objects.bulk_create(
            FollowUpMeasurement(
                read=read,
                time_point=m.time_point,
                lesion_index=m.lesion_index,
                baseline_key=m.baseline_key,
                is_new=m.is_new,
                status=m.status,
                site=m.site,
            )
            for m in measurements
        )

    return ValidatedRead(parsed=parsed, instance_pks=instance_pks, store_extra=store_measurements)


def validate_follow_up_document(
    document: Any, *, rules_by_index: dict, baseline_keys: list[str]
) -> tuple[ParsedRead, list[ParsedMeasurement]]:
    """Return the parsed read and its measurements, or raise ReadValidationError with errors by JSON path.

    `rules_by_index` maps every time point index (0 = baseline) to the ReadRules of its series.
    """
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if not isinstance(document, dict):
        raise ReadValidationError({"": ["the read must be a JSON object"]})
    envelope = _parse_follow_up_envelope(document, rules=rules_by_index[0], fail=fail)
    skip = envelope.flags["skip"]
    time_points = _time_point_list(document, skip=skip, fail=fail)
    follow_up_indices = sorted(index for index in rules_by_index if index > 0)
    measurements, lines, read_indices = _parse_time_points(
        time_points,
        follow_up_indices=follow_up_indices,
        rules_by_index=rules_by_index,
        baseline_keys=baseline_keys,
        fail=fail,
    )
    if not skip:
        absent = [index for index in follow_up_indices if index not in read_indices]
        if absent:
            fail("time_points", f"every follow-up time point must be read; missing index {absent}")

    if errors:
        raise ReadValidationError(errors)
    return (
        ParsedRead(
            client_uuid=envelope.client_uuid,
            case_id=envelope.case_id,
            started_at=envelope.started_at,
            duration_s=float(envelope.duration_s),
            no_lesion=False,
            skip=skip,
            quality_problem=envelope.flags["quality_problem"],
            comment=envelope.comment,
            lines=lines,
        ),
        measurements,
    )


def _parse_follow_up_envelope(document: dict, *, rules: ReadRules, fail: Fail) -> ReadEnvelope:
    """Return the read's shared top-level fields, refusing the no_lesion flag a follow-up read has no use for."""
    # Flags are the task's, the same on every series: the baseline's rules stand for all time points.
    envelope = parse_envelope(document, rules=rules, fail=fail, fields=TOP_LEVEL_FIELDS, required=REQUIRED_FIELDS)
    if envelope.flags["no_lesion"]:
        fail("flags.no_lesion", "is not used in follow-up reads: mark each baseline lesion disappeared instead")
    return envelope


def _time_point_list(document: dict, *, skip: bool, fail: Fail) -> list:
    """Return the document's time points to parse ([] when they are not a list); a skipped read sends none."""
    time_points = document.get("time_points", [])
    if not isinstance(time_points, list):
        fail("time_points", "must be a list")
        time_points = []
    if skip and time_points:
        fail("time_points", "must be empty when skip is set")
    return time_points


def _parse_time_points(
    time_points: list,
    *,
    follow_up_indices: list[int],
    rules_by_index: dict[int, ReadRules],
    baseline_keys: list[str],
    fail: Fail,
) -> tuple[list[ParsedMeasurement], list[ParsedLine], set[int]]:
    """Return the measurements and lines of every time point, and the time point indices that were read."""
    measurements: list[ParsedMeasurement] = []
    lines: list[ParsedLine] = []
    seen_indices: set[int] = set()
    # Lesion numbers key Mark rows across the whole read, so they are unique over all time points.
    seen_numbers: set[int] = set()
    for position, point in enumerate(time_points):
        path = f"time_points[{position}]"
        index = _time_point_index(point, path, follow_up_indices=follow_up_indices, fail=fail)
        if index is None:
            continue
        if index in seen_indices:
            fail(f"{path}.index", f"time point {index} is sent twice")
            continue
        seen_indices.add(index)
        lesions = _time_point_lesions(point, path, fail=fail)
        if lesions is None:
            continue
        point_measurements, point_lines = _parse_time_point_lesions(
            lesions,
            path,
            index=index,
            rules=rules_by_index[index],
            baseline_keys=baseline_keys,
            seen_numbers=seen_numbers,
            fail=fail,
        )
        measurements.extend(point_measurements)
        lines.extend(point_lines)
    return measurements, lines, seen_indices


def _time_point_index(point: Any, path: str, *, follow_up_indices: list[int], fail: Fail) -> int | None:
    """Return the index of a time point object, None when it is not an object or not a follow-up of the case."""
    if not isinstance(point, dict):
        fail(path, "must be an object with index and lesions")
        return None
    for name in sorted(set(point) - TIME_POINT_FIELDS):
        fail(f"{path}.{name}", "unknown field")
    index = point.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index not in follow_up_indices:
        fail(f"{path}.index", f"must be a follow-up time point of this case ({follow_up_indices})")
        return None
    return index


def _time_point_lesions(point: dict, path: str, *, fail: Fail) -> list | None:
    """Return a time point's lesions, None when they are not a list or too many."""
    lesions = point.get("lesions")
    if not isinstance(lesions, list):
        fail(f"{path}.lesions", "must be a list")
        return None
    if len(lesions) > MAX_LESIONS:
        fail(f"{path}.lesions", f"at most {MAX_LESIONS} lesions per time point ({len(lesions)} sent)")
        return None
    return lesions


def _parse_time_point_lesions(
    lesions: list,
    path: str,
    *,
    index: int,
    rules: ReadRules,
    baseline_keys: list[str],
    seen_numbers: set[int],
    fail: Fail,
) -> tuple[list[ParsedMeasurement], list[ParsedLine]]:
    """Return the measurements and lines of one time point's lesions; every baseline lesion must be there once."""
    measurements: list[ParsedMeasurement] = []
    lines: list[ParsedLine] = []
    seen_keys: set[str] = set()
    for lesion_position, lesion in enumerate(lesions):
        lesion_path = f"{path}.lesions[{lesion_position}]"
        parsed = _parse_lesion(lesion, lesion_path, index=index, rules=rules, baseline_keys=baseline_keys, fail=fail)
        if parsed is None:
            continue
        measurement, lesion_lines = parsed
        if measurement.lesion_index in seen_numbers:
            fail(f"{lesion_path}.lesion", f"lesion number {measurement.lesion_index} is used twice in the read")
            continue
        seen_numbers.add(measurement.lesion_index)
        if measurement.baseline_key:
            if measurement.baseline_key in seen_keys:
                fail(f"{lesion_path}.baseline_lesion", f"{measurement.baseline_key} is measured twice")
                continue
            seen_keys.add(measurement.baseline_key)
        measurements.append(measurement)
        lines.extend(lesion_lines)
    missing = [key for key in baseline_keys if key not in seen_keys]
    if missing:
        fail(
            f"{path}.lesions",
            f"every baseline lesion needs a status at each time point; missing {', '.join(missing)}",
        )
    return measurements, lines


def _parse_lesion(lesion: Any, path: str, *, index: int, rules, baseline_keys: list[str], fail):
    if not isinstance(lesion, dict):
        fail(path, "must be an object")
        return None
    ok = True
    for name in sorted(set(lesion) - LESION_FIELDS):
        fail(f"{path}.{name}", "unknown field")
        ok = False
    number = lesion.get("lesion")
    if not whole_number_in(number, 1, SMALL_INT_MAX):
        fail(f"{path}.lesion", LESION_NUMBER_PROBLEM)
        ok = False
    is_new = lesion.get("new", False)
    if not isinstance(is_new, bool):
        fail(f"{path}.new", "must be true or false")
        ok = False
    key = lesion.get("baseline_lesion")
    if is_new is True and key is not None:
        fail(f"{path}.baseline_lesion", "a new lesion has no baseline lesion")
        ok = False
    if is_new is False:
        if key is None:
            fail(f"{path}.baseline_lesion", 'this field is required (or "new": true for a new lesion)')
            ok = False
        elif not isinstance(key, str):
            fail(f"{path}.baseline_lesion", "must be the id of a baseline lesion (a string)")
            ok = False
        elif key not in baseline_keys:
            fail(f"{path}.baseline_lesion", f"{key!r} is not a baseline lesion of this case ({baseline_keys})")
            ok = False
    status = lesion.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        fail(f"{path}.status", f"must be one of {sorted(STATUSES)}")
        ok = False
    elif is_new is True and status != FollowUpStatus.MEASURED:
        fail(f"{path}.status", "a new lesion must be measured")
        ok = False
    site = lesion.get("site", "")
    if site is None:
        site = ""
    if not isinstance(site, str) or len(site) > MAX_SITE_CHARS:
        fail(f"{path}.site", f"must be a string of at most {MAX_SITE_CHARS} characters")
        ok = False
    elif problem := text_problem(site):
        fail(f"{path}.site", problem)
        ok = False
    has_geometry = lesion.get("long_axis") is not None or lesion.get("short_axis") is not None
    if status == FollowUpStatus.MEASURED and lesion.get("long_axis") is None:
        fail(f"{path}.long_axis", "a measured lesion needs a long_axis on this time point's series")
        ok = False
    if status in (FollowUpStatus.DISAPPEARED, FollowUpStatus.NOT_EVALUABLE) and has_geometry:
        fail(path, f"a lesion marked {status} carries no lines")
        ok = False
    lines = parse_lesion_lines(lesion, path, number if ok else None, rules, fail)
    if not ok:
        return None
    measurement = ParsedMeasurement(
        time_point=index,
        lesion_index=number,
        baseline_key="" if is_new else key,
        is_new=is_new,
        status=status,
        site=site.strip(),
    )
    return measurement, lines


# --- RECIST of a stored read -------------------------------------------------------------------


def read_measurements(read: Read) -> list[recist.TimePointMeasurements]:
    """Return the read's time points as RECIST measurements (lengths from its Mark rows)."""
    lengths: dict[int, dict[str, float]] = defaultdict(dict)
    for lesion_index, kind, length_mm in Mark.objects.filter(read=read).values_list(
        "lesion_index", "kind", "length_mm"
    ):
        lengths[lesion_index][kind] = length_mm
    lesions: dict[int, dict[str, recist.LesionAtTimePoint]] = defaultdict(dict)
    new_lesions: dict[int, int] = defaultdict(int)
    indices: set[int] = set()
    for m in read.follow_up_measurements.all():
        indices.add(m.time_point)
        if m.is_new:
            new_lesions[m.time_point] += 1
            continue
        drawn = lengths.get(m.lesion_index, {})
        lesions[m.time_point][m.baseline_key] = recist.LesionAtTimePoint(
            status=recist.Status(m.status),
            long_axis_mm=drawn.get("long_axis"),
            short_axis_mm=drawn.get("short_axis"),
        )
    return [
        recist.TimePointMeasurements(index=index, lesions=lesions[index], new_lesions=new_lesions[index])
        for index in sorted(indices)
    ]


def read_recist(read: Read) -> list[dict]:
    """Return the RECIST result of a follow-up read per time point (docs/follow-up.md), [] for a skip."""
    baseline = recist.baseline_sizes(baseline_lesions_for(case=read.case, reader=read.reader))
    return [result.as_dict() for result in recist.assess(baseline, read_measurements(read))]
