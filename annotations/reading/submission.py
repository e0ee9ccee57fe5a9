"""Saving a read: strict validation of the read document (docs/read-format.md), idempotent storage, versions.

`validate_read_document` is a pure function over the document and the case's geometry, returning
parsed lines and masks or raising ReadValidationError with errors keyed by JSON path.
`submit_read` stores a new immutable Read (a correction is a new version), its Mark and MaskSlice rows,
keeps Case.reads_done right and releases the reader's lease, all under the case row lock; after commit
it queues consensus and broadcasts the leaderboard. This module must never update or delete a saved
Read, and must never accept a read for a case the reader was not given.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotations import background
from annotations.assignment import services as assignment
from annotations.core.answers import CheckedAnswers, Questions, check_answers
from annotations.models import Case, Lease, Mark, MaskSlice, Read, Reader, Task
from annotations.models.reads import MarkKind
from annotations.models.tasks import Tool
from annotations.questions.services import current_question_set, questions_of
from viewer.dicomweb.access import cache_scope, series_version
from viewer.models import Instance, Series

logger = logging.getLogger(__name__)

MAX_LESIONS = 50
MAX_COMMENT_CHARS = 2000
MAX_DURATION_S = 86_400
LENGTH_TOLERANCE_MM = 0.5
LENGTH_TOLERANCE_FRACTION = 0.01
TOP_LEVEL_FIELDS = {
    "client_uuid",
    "case",
    "started_at",
    "duration_s",
    "flags",
    "comment",
    "lesions",
    "question_version",
    "answers",
}
REQUIRED_FIELDS = ("client_uuid", "case", "started_at", "duration_s", "flags", "lesions")
FLAG_NAMES = ("no_lesion", "skip", "quality_problem")
LESION_FIELDS = {"lesion", "long_axis", "short_axis", "mask", "answers"}
LINE_FIELDS = {"sop_instance_uid", "frame", "start", "end", "length_mm"}
MASK_SLICE_FIELDS = {"sop_instance_uid", "frame", "counts"}


class ReadValidationError(Exception):
    """The read document breaks a rule; `errors` maps JSON paths to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{path}: {', '.join(msgs)}" for path, msgs in errors.items()))
        self.errors = errors


class ReadConflict(Exception):
    """The client_uuid is already stored with a different document, or the case can no longer take the read."""


@dataclass(frozen=True)
class InstanceGeometry:
    """What validation needs to know about one instance of the case's series."""

    pk: int
    rows: int
    columns: int
    number_of_frames: int
    # (row spacing, column spacing) in mm, DICOM order; None when the file has no PixelSpacing.
    pixel_spacing_mm: tuple[float, float] | None


@dataclass(frozen=True)
class ReadRules:
    """The task's rules a read is checked against."""

    tools: frozenset[str]
    max_lesions_per_case: int | None
    instances: Mapping[str, InstanceGeometry]
    # The task's current questions (None: it never had any) and the id of their QuestionSet row.
    questions: Questions | None = None
    question_set_id: int | None = None


@dataclass(frozen=True)
class ParsedLine:
    lesion_index: int
    kind: str
    sop_instance_uid: str
    frame: int
    start: tuple[float, float]
    end: tuple[float, float]
    length_mm: float


@dataclass(frozen=True)
class ParsedMaskSlice:
    lesion_index: int
    sop_instance_uid: str
    frame: int
    counts: list[int]
    pixel_count: int


@dataclass
class ParsedRead:
    client_uuid: uuid.UUID
    case_id: int
    started_at: datetime
    duration_s: float
    no_lesion: bool
    skip: bool
    quality_problem: bool
    comment: str
    lines: list[ParsedLine] = field(default_factory=list)
    mask_slices: list[ParsedMaskSlice] = field(default_factory=list)
    answers: CheckedAnswers = field(default_factory=CheckedAnswers)


@dataclass(frozen=True)
class SubmissionResult:
    read: Read
    created: bool


def line_length_mm(
    *, start: tuple[float, float], end: tuple[float, float], pixel_spacing_mm: tuple[float, float]
) -> float:
    """Return a line's length in mm from [column, row] end points and (row, column) pixel spacing."""
    row_spacing, column_spacing = pixel_spacing_mm
    dc = end[0] - start[0]
    dr = end[1] - start[1]
    return math.hypot(column_spacing * dc, row_spacing * dr)


def read_envelope(document: Any) -> tuple[uuid.UUID, int]:
    """Return (client_uuid, case id) of a document, or raise ReadValidationError for those two fields."""
    errors: dict[str, list[str]] = {}
    if not isinstance(document, dict):
        raise ReadValidationError({"": ["the read must be a JSON object"]})
    client_uuid = _parse_uuid(document.get("client_uuid"), "client_uuid", errors)
    case_id = document.get("case")
    if "case" not in document:
        errors.setdefault("case", []).append("this field is required")
    elif not _is_int(case_id) or case_id < 1:
        errors.setdefault("case", []).append("must be a case id (a positive integer)")
    if errors:
        raise ReadValidationError(errors)
    return client_uuid, case_id


@dataclass(frozen=True)
class ReadEnvelope:
    """The fields every read document shares (single and follow-up): who, when, flags, comment."""

    client_uuid: uuid.UUID | None
    case_id: Any
    started_at: datetime | None
    duration_s: Any
    flags: dict[str, bool]
    comment: str


def parse_envelope(
    document: dict, *, rules: ReadRules, fail, fields: set[str], required: tuple[str, ...]
) -> ReadEnvelope:
    """Check the shared top-level fields of a read document, reporting errors through `fail(path, message)`."""
    for name in sorted(set(document) - fields):
        fail(name, "unknown field")
    for name in required:
        if name not in document:
            fail(name, "this field is required")

    errors: dict[str, list[str]] = {}
    client_uuid = _parse_uuid(document.get("client_uuid"), "client_uuid", errors) if "client_uuid" in document else None
    for path, messages in errors.items():
        for message in messages:
            fail(path, message)
    case_id = document.get("case")
    if "case" in document and (not _is_int(case_id) or case_id < 1):
        fail("case", "must be a case id (a positive integer)")

    started_at = None
    if "started_at" in document:
        raw = document["started_at"]
        started_at = parse_datetime(raw) if isinstance(raw, str) else None
        if started_at is None:
            fail("started_at", "must be an ISO 8601 date-time, e.g. 2026-11-25T10:31:02.120Z")
        elif timezone.is_naive(started_at):
            fail("started_at", "must include a time zone (Z or +hh:mm)")
            started_at = None

    duration_s = document.get("duration_s")
    if "duration_s" in document and (not _is_finite_number(duration_s) or not 0 <= duration_s <= MAX_DURATION_S):
        fail("duration_s", f"must be a number of seconds from 0 to {MAX_DURATION_S}")

    flags = {name: False for name in FLAG_NAMES}
    raw_flags = document.get("flags", {})
    if not isinstance(raw_flags, dict):
        fail("flags", "must be an object of no_lesion, skip, quality_problem")
        raw_flags = {}
    for name, value in raw_flags.items():
        if name not in FLAG_NAMES:
            fail(f"flags.{name}", "unknown flag")
        elif not isinstance(value, bool):
            fail(f"flags.{name}", "must be true or false")
        else:
            flags[name] = value
            if value and name not in rules.tools:
                fail(f"flags.{name}", f"the task does not offer {name}")

    comment = document.get("comment", "")
    if not isinstance(comment, str):
        fail("comment", "must be a string")
        comment = ""
    elif len(comment) > MAX_COMMENT_CHARS:
        fail("comment", f"at most {MAX_COMMENT_CHARS} characters ({len(comment)} sent)")
    return ReadEnvelope(client_uuid, case_id, started_at, duration_s, flags, comment)


def parse_lesion_lines(lesion: dict, path: str, number: int | None, rules: ReadRules, fail) -> list[ParsedLine]:
    """Return the parsed long and short axis of one lesion object (either may be absent), checked against the task.

    The short axis must sit on the long axis' frame and not be longer; `number` None parses without keeping.
    """
    lines: list[ParsedLine] = []
    long_axis = lesion.get("long_axis")
    short_axis = lesion.get("short_axis")
    parsed_long = None
    if long_axis is not None:
        if not ({Tool.LONG_AXIS, Tool.BIDIRECTIONAL} & rules.tools):
            fail(f"{path}.long_axis", "the task does not offer line measurements")
        parsed_long = _parse_line(long_axis, f"{path}.long_axis", rules, fail)
    if short_axis is not None:
        if Tool.BIDIRECTIONAL not in rules.tools:
            fail(f"{path}.short_axis", "the task does not offer bidirectional measurements")
        parsed_short = _parse_line(short_axis, f"{path}.short_axis", rules, fail)
        if long_axis is None:
            fail(f"{path}.short_axis", "a short_axis needs a long_axis")
        elif parsed_long and parsed_short:
            if (parsed_short[0], parsed_short[1]) != (parsed_long[0], parsed_long[1]):
                fail(f"{path}.short_axis", "must be on the same instance and frame as the long_axis")
            elif parsed_short[4] > parsed_long[4] + LENGTH_TOLERANCE_MM:
                fail(f"{path}.short_axis", "is longer than the long_axis")
        if parsed_short and number is not None:
            lines.append(ParsedLine(number, MarkKind.SHORT_AXIS, *parsed_short))
    if parsed_long and number is not None:
        lines.append(ParsedLine(number, MarkKind.LONG_AXIS, *parsed_long))
    return lines


def validate_read_document(document: Any, *, rules: ReadRules) -> ParsedRead:
    """Return the parsed read, or raise ReadValidationError listing every broken rule by JSON path."""
    errors: dict[str, list[str]] = {}

    def fail(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if not isinstance(document, dict):
        raise ReadValidationError({"": ["the read must be a JSON object"]})
    envelope = parse_envelope(document, rules=rules, fail=fail, fields=TOP_LEVEL_FIELDS, required=REQUIRED_FIELDS)
    flags = envelope.flags

    lines: list[ParsedLine] = []
    mask_slices: list[ParsedMaskSlice] = []
    lesions = document.get("lesions", [])
    if not isinstance(lesions, list):
        fail("lesions", "must be a list")
        lesions = []
    limit = min(MAX_LESIONS, rules.max_lesions_per_case) if rules.max_lesions_per_case else MAX_LESIONS
    if len(lesions) > limit:
        fail("lesions", f"at most {limit} lesions per case ({len(lesions)} sent)")
        lesions = lesions[: MAX_LESIONS + 1]
    if lesions and (flags["no_lesion"] or flags["skip"]):
        fail("lesions", "must be empty when no_lesion or skip is set")
    if not lesions and not (flags["no_lesion"] or flags["skip"]):
        fail("lesions", "a read without lesions must set flags.no_lesion or flags.skip")

    seen_numbers: set[int] = set()
    for index, lesion in enumerate(lesions):
        path = f"lesions[{index}]"
        if not isinstance(lesion, dict):
            fail(path, "must be an object")
            continue
        for name in sorted(set(lesion) - LESION_FIELDS):
            fail(f"{path}.{name}", "unknown field")
        number = lesion.get("lesion")
        if not _is_int(number) or number < 1:
            fail(f"{path}.lesion", "must be a lesion number from 1")
            number = None
        elif number in seen_numbers:
            fail(f"{path}.lesion", f"lesion number {number} is used twice")
        else:
            seen_numbers.add(number)
        mask = lesion.get("mask")
        if lesion.get("long_axis") is None and mask is None:
            fail(path, "a lesion needs a long_axis or a mask")
        lines.extend(parse_lesion_lines(lesion, path, number, rules, fail))
        if mask is not None:
            if Tool.MASK not in rules.tools:
                fail(f"{path}.mask", "the task does not offer lesion masks")
            for parsed in _parse_mask(mask, f"{path}.mask", rules, fail):
                if number is not None:
                    mask_slices.append(ParsedMaskSlice(number, *parsed))

    checked_answers, answer_errors = check_answers(document, questions=rules.questions, skip=flags["skip"])
    for path, messages in answer_errors.items():
        errors.setdefault(path, []).extend(messages)

    if errors:
        raise ReadValidationError(errors)
    return ParsedRead(
        client_uuid=envelope.client_uuid,
        case_id=envelope.case_id,
        started_at=envelope.started_at,
        duration_s=float(envelope.duration_s),
        no_lesion=flags["no_lesion"],
        skip=flags["skip"],
        quality_problem=flags["quality_problem"],
        comment=envelope.comment,
        lines=lines,
        mask_slices=mask_slices,
        answers=checked_answers,
    )


def rules_for_case(case: Case) -> ReadRules:
    """Return the task's rules and the geometry of every instance of the case's series."""
    return rules_for_series(task=case.task, series_id=case.series_id, series=case.series)


def rules_for_series(*, task: Task, series_id: int, series: Series | None = None) -> ReadRules:
    """Return the task's rules and the geometry of every instance of one series (a follow-up reads several).

    `series`, when the caller already holds the row, saves looking it up again.
    """
    if series is None:
        series = Series.objects.only("pk", "series_instance_uid").get(pk=series_id)
    # Every submit checks its marks against hundreds of instances; their geometry changes only when
    # instances are added or removed, so it is loaded once per process and series version.
    instances = _instance_geometries(cache_scope(), series_id, series.series_instance_uid, series_version(series))
    question_set = current_question_set(task)
    return ReadRules(
        tools=frozenset(task.tools or []),
        max_lesions_per_case=task.max_lesions_per_case,
        instances=instances,
        questions=questions_of(question_set),
        question_set_id=question_set.pk if question_set else None,
    )


@lru_cache(maxsize=256)
def _instance_geometries(scope: str, series_id: int, series_uid: str, version: str) -> Mapping[str, InstanceGeometry]:
    # Store, series UID and version are in the key so a cached entry never outlives its rows' identity.
    return MappingProxyType(
        {
            uid: InstanceGeometry(
                pk=pk,
                rows=rows,
                columns=columns,
                number_of_frames=frames or 1,
                pixel_spacing_mm=_spacing(spacing),
            )
            for uid, pk, rows, columns, frames, spacing in Instance.objects.filter(series_id=series_id).values_list(
                "sop_instance_uid", "pk", "rows", "columns", "number_of_frames", "pixel_spacing_mm"
            )
        }
    )


@dataclass(frozen=True)
class ValidatedRead:
    """A checked read ready to store: its parsed form, the pk of every instance it may name, and extra rows."""

    parsed: ParsedRead
    instance_pks: dict[str, int]
    # Writes rows beside the Read (e.g. follow-up measurements) inside the storing transaction.
    store_extra: Callable[[Read], None] | None = None
    # The task's question version the read answered (None: the task asks no questions).
    question_set_id: int | None = None


def submit_read(*, reader: Reader, document: Any, now: datetime | None = None) -> SubmissionResult:
    """Store the read document as a new Read of this reader, or return the one stored under its client_uuid.

    Raises ReadValidationError (400) or ReadConflict (409).
    """
    return submit_document(reader=reader, document=document, validate=_validate_single_time_point, now=now)


def submit_document(
    *,
    reader: Reader,
    document: Any,
    validate: Callable[[Case, Any], ValidatedRead],
    now: datetime | None = None,
) -> SubmissionResult:
    """Store a read checked by `validate(case, document)`: idempotent by client_uuid, versioned, lease released.

    Shared by single-time-point reads and follow-up reads (services.follow_up_reads).
    """
    now = now or timezone.now()
    client_uuid, case_id = read_envelope(document)
    existing = _stored_retry(client_uuid=client_uuid, reader=reader, document=document)
    if existing is not None:
        return SubmissionResult(read=existing, created=False)
    case = Case.objects.select_related("task", "series").filter(pk=case_id).first()
    if case is None:
        raise ReadValidationError({"case": [f"there is no case {case_id}"]})
    validated = validate(case, document)
    try:
        with transaction.atomic():
            read = _store(
                reader=reader,
                case_id=case.pk,
                parsed=validated.parsed,
                document=document,
                now=now,
                instance_pks=validated.instance_pks,
                question_set_id=validated.question_set_id,
            )
            if validated.store_extra is not None:
                validated.store_extra(read)
    except IntegrityError:
        # A concurrent retry of the same submit won the race on client_uuid.
        existing = _stored_retry(client_uuid=client_uuid, reader=reader, document=document)
        if existing is None:
            raise
        return SubmissionResult(read=existing, created=False)
    case_id = case.pk
    background.on_commit_soon(lambda: _queue_consensus(case_id=case_id))
    background.on_commit_soon(_broadcast_leaderboard, coalesce_key="leaderboard-broadcast")
    return SubmissionResult(read=read, created=True)


def _validate_single_time_point(case: Case, document: Any) -> ValidatedRead:
    if case.task.is_follow_up:
        raise ReadValidationError(
            {"lesions": [f"case {case.pk} is a follow-up case: send time_points instead (docs/follow-up.md)"]}
        )
    rules = rules_for_case(case)
    parsed = validate_read_document(document, rules=rules)
    return ValidatedRead(
        parsed=parsed,
        instance_pks={uid: geometry.pk for uid, geometry in rules.instances.items()},
        question_set_id=rules.question_set_id,
    )


def _store(
    *,
    reader: Reader,
    case_id: int,
    parsed: ParsedRead,
    document: dict,
    now: datetime,
    instance_pks: dict[str, int],
    question_set_id: int | None,
) -> Read:
    case = assignment.lock_case_for_reader(case_id, reader=reader, now=now, skip_locked=False)
    if not case.task.is_open:
        raise ReadConflict("the task is closed")
    if case.latest_read_id is None:
        if case.own_lease_id is None:
            raise ReadConflict("this case was not given to you; ask for the next case")
        if not case.own_lease_live and not assignment.has_room_locked(case):
            raise ReadConflict("your hold on this case ran out and it has all the reads it needs")
    read = Read.objects.create(
        case=case,
        reader=reader,
        version=case.latest_read_version + 1 if case.latest_read_id is not None else 1,
        supersedes_id=case.latest_read_id,
        **read_fields(parsed=parsed, document=document, question_set_id=question_set_id),
    )
    store_marks(read=read, parsed=parsed, instance_pks=instance_pks)
    if case.own_lease_id is not None:
        Lease.objects.filter(pk=case.own_lease_id).delete()
    case.reads_done = counted_reads(case=case)
    case.save(update_fields=["reads_done"])
    return read


def read_fields(*, parsed: ParsedRead, document: dict, question_set_id: int | None) -> dict:
    """The Read columns a checked document fills (crowd reads and answer keys alike)."""
    return {
        "client_uuid": parsed.client_uuid,
        "no_lesion": parsed.no_lesion,
        "skip": parsed.skip,
        "quality_problem": parsed.quality_problem,
        "comment": parsed.comment,
        "started_at": parsed.started_at,
        "duration_s": parsed.duration_s,
        "document": document,
        "question_set_id": question_set_id,
        "answers": parsed.answers.as_json(),
    }


def store_marks(*, read: Read, parsed: ParsedRead, instance_pks: dict[str, int]) -> None:
    """Store the parsed lines and painted mask slices of a new read as its Mark and MaskSlice rows."""
    Mark.objects.bulk_create(
        Mark(
            read=read,
            lesion_index=line.lesion_index,
            kind=line.kind,
            instance_id=instance_pks[line.sop_instance_uid],
            frame=line.frame,
            start_col=line.start[0],
            start_row=line.start[1],
            end_col=line.end[0],
            end_row=line.end[1],
            length_mm=line.length_mm,
        )
        for line in parsed.lines
    )
    MaskSlice.objects.bulk_create(
        MaskSlice(
            read=read,
            lesion_index=mask.lesion_index,
            instance_id=instance_pks[mask.sop_instance_uid],
            frame=mask.frame,
            counts=mask.counts,
            pixel_count=mask.pixel_count,
        )
        for mask in parsed.mask_slices
        if mask.pixel_count > 0
    )


def counted_reads(*, case: Case) -> int:
    """Return the reads that count towards the case's target: readers whose latest version is not a skip."""
    latest: dict[int, bool] = {}
    for reader_id, skip in case.reads.order_by("reader_id", "version").values_list("reader_id", "skip"):
        latest[reader_id] = skip
    return sum(1 for skip in latest.values() if not skip)


def _stored_retry(*, client_uuid: uuid.UUID, reader: Reader, document: dict) -> Read | None:
    stored = Read.objects.filter(client_uuid=client_uuid).first()
    if stored is None:
        return None
    if stored.reader_id != reader.pk or stored.document != document:
        raise ReadConflict("this client_uuid is already stored with a different read")
    return stored


def _queue_consensus(*, case_id: int) -> None:
    try:
        from annotations.consensus.tasks import compute_case_consensus
    except ImportError:
        logger.warning("consensus task not available; case %s will be computed by the next consensus run", case_id)
    else:
        compute_case_consensus.delay(case_id)


def _broadcast_leaderboard() -> None:
    from annotations.booth.leaderboard import broadcast_leaderboard

    broadcast_leaderboard()


def _parse_line(value: Any, path: str, rules: ReadRules, fail) -> tuple | None:
    """Return (sop_instance_uid, frame, start, end, length_mm) or None after reporting errors."""
    if not isinstance(value, dict):
        fail(path, "must be an object with sop_instance_uid, frame, start, end, length_mm")
        return None
    ok = True
    for name in sorted(set(value) - LINE_FIELDS):
        fail(f"{path}.{name}", "unknown field")
        ok = False
    for name in sorted(LINE_FIELDS - set(value)):
        fail(f"{path}.{name}", "this field is required")
        ok = False
    geometry, frame = _instance_frame(value, path, rules, fail)
    points = []
    for end_name in ("start", "end"):
        point = value.get(end_name)
        if end_name not in value:
            continue
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(_is_finite_number(coordinate) for coordinate in point)
        ):
            fail(f"{path}.{end_name}", "must be [column, row] as two finite numbers")
            ok = False
            continue
        column, row = float(point[0]), float(point[1])
        if geometry is not None:
            if not -0.5 <= column <= geometry.columns - 0.5:
                fail(f"{path}.{end_name}", f"column {column} is outside the image (-0.5 to {geometry.columns - 0.5})")
                ok = False
            if not -0.5 <= row <= geometry.rows - 0.5:
                fail(f"{path}.{end_name}", f"row {row} is outside the image (-0.5 to {geometry.rows - 0.5})")
                ok = False
        points.append((column, row))
    length_mm = value.get("length_mm")
    if "length_mm" in value and (not _is_finite_number(length_mm) or length_mm < 0):
        fail(f"{path}.length_mm", "must be a finite number of mm, at least 0")
        ok = False
    if not ok or geometry is None or frame is None or len(points) != 2:
        return None
    if geometry.pixel_spacing_mm is None:
        fail(f"{path}.sop_instance_uid", "this image has no pixel spacing, so lines cannot be measured in mm")
        return None
    if points[0] == points[1]:
        fail(path, "start and end are the same point")
        return None
    server_mm = line_length_mm(start=points[0], end=points[1], pixel_spacing_mm=geometry.pixel_spacing_mm)
    tolerance = max(LENGTH_TOLERANCE_MM, LENGTH_TOLERANCE_FRACTION * server_mm)
    if abs(server_mm - float(length_mm)) > tolerance:
        fail(f"{path}.length_mm", f"{float(length_mm):.2f} mm does not match the end points ({server_mm:.2f} mm)")
        return None
    return value["sop_instance_uid"], frame, points[0], points[1], server_mm


def _parse_mask(value: Any, path: str, rules: ReadRules, fail) -> list[tuple]:
    if not isinstance(value, dict) or set(value) != {"slices"} or not isinstance(value.get("slices"), list):
        fail(path, 'must be {"slices": [...]}')
        return []
    slices = value["slices"]
    parsed = []
    seen: set[tuple[str, int]] = set()
    max_slices = sum(geometry.number_of_frames for geometry in rules.instances.values())
    if len(slices) > max_slices:
        fail(f"{path}.slices", f"at most one entry per frame of the series ({max_slices})")
        return []
    for index, entry in enumerate(slices):
        entry_path = f"{path}.slices[{index}]"
        if not isinstance(entry, dict):
            fail(entry_path, "must be an object with sop_instance_uid, frame, counts")
            continue
        bad_keys = False
        for name in sorted(set(entry) - MASK_SLICE_FIELDS):
            fail(f"{entry_path}.{name}", "unknown field")
            bad_keys = True
        for name in sorted(MASK_SLICE_FIELDS - set(entry)):
            fail(f"{entry_path}.{name}", "this field is required")
            bad_keys = True
        geometry, frame = _instance_frame(entry, entry_path, rules, fail)
        if bad_keys or geometry is None or frame is None:
            continue
        key = (entry["sop_instance_uid"], frame)
        if key in seen:
            fail(entry_path, "a second mask entry for the same frame")
            continue
        seen.add(key)
        pixel_count = _check_counts(entry["counts"], geometry, f"{entry_path}.counts", fail)
        if pixel_count is not None:
            parsed.append((entry["sop_instance_uid"], frame, list(entry["counts"]), pixel_count))
    return parsed


def _check_counts(counts: Any, geometry: InstanceGeometry, path: str, fail) -> int | None:
    """Return the painted pixel count of valid run lengths, else report and return None."""
    total = geometry.rows * geometry.columns
    if not isinstance(counts, list) or not counts:
        fail(path, "must be a non-empty list of run lengths")
        return None
    if len(counts) > total + 1:
        fail(path, f"more runs ({len(counts)}) than pixels ({total})")
        return None
    ones = 0
    running = 0
    for position, run in enumerate(counts):
        if not _is_int(run) or run < 0 or (run == 0 and position > 0):
            fail(path, f"run {position} must be a positive integer (only the first run may be 0)")
            return None
        running += run
        if position % 2 == 1:
            ones += run
    if running != total:
        fail(path, f"runs sum to {running}, expected rows x columns = {geometry.rows} x {geometry.columns} = {total}")
        return None
    return ones


def _instance_frame(value: dict, path: str, rules: ReadRules, fail) -> tuple[InstanceGeometry | None, int | None]:
    uid = value.get("sop_instance_uid")
    geometry = rules.instances.get(uid) if isinstance(uid, str) else None
    if "sop_instance_uid" in value and geometry is None:
        fail(f"{path}.sop_instance_uid", "is not an instance of this case's series")
    frame = value.get("frame")
    if "frame" not in value:
        return geometry, None
    if not _is_int(frame) or frame < 1:
        fail(f"{path}.frame", "must be a frame number from 1")
        return geometry, None
    if geometry is not None and frame > geometry.number_of_frames:
        fail(f"{path}.frame", f"frame {frame} is beyond the instance's {geometry.number_of_frames} frame(s)")
        return geometry, None
    return geometry, frame


def _parse_uuid(value: Any, path: str, errors: dict[str, list[str]]) -> uuid.UUID | None:
    if value is None:
        errors.setdefault(path, []).append("this field is required")
        return None
    try:
        if not isinstance(value, str):
            raise TypeError(value)
        return uuid.UUID(value)
    except (ValueError, TypeError):
        errors.setdefault(path, []).append("must be a UUID string")
        return None


def _spacing(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(_is_finite_number(v) and v > 0 for v in value):
        return float(value[0]), float(value[1])
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
