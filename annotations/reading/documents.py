"""The read document (docs/read-format.md), checked strictly against a task's rules and a series' geometry.

`validate_read_document` is a pure function over the document and the `ReadRules`, returning parsed lines and
masks or raising ReadValidationError with errors keyed by JSON path. It never touches the database: the rules
are loaded by `reading.rules`, and storing is `reading.submission`'s job.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from annotations.core.answers import CheckedAnswers, Questions, check_answers
from annotations.core.field_checks import (
    BIG_INT_MAX,
    SMALL_INT_MAX,
    is_finite_number,
    is_whole_number,
    parse_aware_datetime,
    safe_text,
    text_problem,
    unstorable_json,
    whole_number_in,
)
from annotations.core.geometry import line_length_mm
from annotations.core.mask_rle import foreground_indices
from annotations.models.reads import MarkKind
from annotations.models.tasks import Tool

if TYPE_CHECKING:
    from annotations.models import Read

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
MASK_FIELDS = {"slices", "provenance"}
PROVENANCE_FIELDS = {"source", "algorithm", "algorithm_version", "proposal"}
PROVENANCE_SOURCES = ("hand", "line", "tap")
MAX_ALGORITHM_CHARS = 128
LESION_NUMBER_PROBLEM = f"must be a lesion number from 1 to {SMALL_INT_MAX}"

# Reports one error, `fail(json_path, message)`; the validators collect every error before refusing a read.
Fail = Callable[[str, str], None]


class ReadValidationError(Exception):
    """The read document breaks a rule; `errors` maps JSON paths to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        # Paths and messages may quote what was sent (an unknown field's name): keep them sendable as JSON.
        errors = {safe_text(path): [safe_text(message) for message in msgs] for path, msgs in errors.items()}
        super().__init__("; ".join(f"{path}: {', '.join(msgs)}" for path, msgs in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class InstanceExtent:
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
    instances: Mapping[str, InstanceExtent]
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


@dataclass(frozen=True)
class ParsedMaskProvenance:
    """How a lesion's mask was made: by hand, or proposed from a line or tap and maybe edited.

    ``edit_dice`` is the Dice between the proposal and the submitted mask, computed here from both (never
    taken from the page); ``edited`` is whether they differ at all. Both are None for a hand-made mask.
    """

    lesion_index: int
    source: str
    algorithm: str
    algorithm_version: str
    edited: bool | None
    edit_dice: float | None
    proposal_pixels: int | None


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
    mask_provenance: list[ParsedMaskProvenance] = field(default_factory=list)


def read_envelope(document: Any) -> tuple[uuid.UUID, int]:
    """Return (client_uuid, case id) of a document, or raise ReadValidationError for those two fields.

    The door of every read: a document holding text or numbers no store can keep (NUL, an unpaired
    surrogate, a whole number beyond 64 bits, anywhere, unknown fields included) stops here.
    """
    if not isinstance(document, dict):
        raise ReadValidationError({"": ["the read must be a JSON object"]})
    errors: dict[str, list[str]] = unstorable_json(document)
    if errors:
        raise ReadValidationError(errors)
    client_uuid = _parse_uuid(document.get("client_uuid"), "client_uuid", errors)
    case_id = document.get("case")
    if "case" not in document:
        errors.setdefault("case", []).append("this field is required")
    elif not whole_number_in(case_id, 1, BIG_INT_MAX):
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
    if "case" in document and not whole_number_in(case_id, 1, BIG_INT_MAX):
        fail("case", "must be a case id (a positive integer)")

    started_at = None
    if "started_at" in document:
        started_at, problem = parse_aware_datetime(document["started_at"])
        if problem:
            fail("started_at", problem)

    duration_s = document.get("duration_s")
    if "duration_s" in document and (not is_finite_number(duration_s) or not 0 <= duration_s <= MAX_DURATION_S):
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
    elif problem := text_problem(comment, multiline=True):
        fail("comment", problem)
        comment = ""
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
    lesions = _lesion_list(document, flags=flags, rules=rules, fail=fail)
    marks = _parse_lesions(lesions, rules=rules, fail=fail)

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
        lines=marks.lines,
        mask_slices=marks.mask_slices,
        answers=checked_answers,
        mask_provenance=marks.mask_provenance,
    )


@dataclass
class _LesionMarks:
    """What the lesions of a read drew: their lines, mask slices and masks' provenance."""

    lines: list[ParsedLine] = field(default_factory=list)
    mask_slices: list[ParsedMaskSlice] = field(default_factory=list)
    mask_provenance: list[ParsedMaskProvenance] = field(default_factory=list)


def _lesion_list(document: dict, *, flags: dict[str, bool], rules: ReadRules, fail: Fail) -> list:
    """Return the document's lesions to parse, after checking their number against the task and the flags."""
    lesions = document.get("lesions", [])
    if not isinstance(lesions, list):
        fail("lesions", "must be a list")
        lesions = []
    limit = min(MAX_LESIONS, rules.max_lesions_per_case) if rules.max_lesions_per_case else MAX_LESIONS
    if len(lesions) > limit:
        fail("lesions", f"at most {limit} lesions per case ({len(lesions)} sent)")
        # Enough to report on without parsing a flood of lesions.
        lesions = lesions[: MAX_LESIONS + 1]
    if lesions and (flags["no_lesion"] or flags["skip"]):
        fail("lesions", "must be empty when no_lesion or skip is set")
    if not lesions and not (flags["no_lesion"] or flags["skip"]):
        fail("lesions", "a read without lesions must set flags.no_lesion or flags.skip")
    return lesions


def _parse_lesions(lesions: list, *, rules: ReadRules, fail: Fail) -> _LesionMarks:
    """Return the lines, mask slices and mask provenance of every lesion, reporting what is wrong by path."""
    marks = _LesionMarks()
    seen_numbers: set[int] = set()
    for index, lesion in enumerate(lesions):
        path = f"lesions[{index}]"
        if not isinstance(lesion, dict):
            fail(path, "must be an object")
            continue
        for name in sorted(set(lesion) - LESION_FIELDS):
            fail(f"{path}.{name}", "unknown field")
        number = _lesion_number(lesion, path, seen_numbers=seen_numbers, fail=fail)
        mask = lesion.get("mask")
        if lesion.get("long_axis") is None and mask is None:
            fail(path, "a lesion needs a long_axis or a mask")
        marks.lines.extend(parse_lesion_lines(lesion, path, number, rules, fail))
        if mask is not None:
            mask_slices, provenance = _parse_lesion_mask(mask, f"{path}.mask", number=number, rules=rules, fail=fail)
            marks.mask_slices.extend(mask_slices)
            if provenance is not None:
                marks.mask_provenance.append(provenance)
    return marks


def _lesion_number(lesion: dict, path: str, *, seen_numbers: set[int], fail: Fail) -> int | None:
    """Return the lesion's number to key its marks by, None when it is not a valid number; records it as seen."""
    number = lesion.get("lesion")
    if not whole_number_in(number, 1, SMALL_INT_MAX):
        fail(f"{path}.lesion", LESION_NUMBER_PROBLEM)
        return None
    if number in seen_numbers:
        # Still returned: the lesion's marks are parsed and reported, the read is refused anyway.
        fail(f"{path}.lesion", f"lesion number {number} is used twice")
    else:
        seen_numbers.add(number)
    return number


def _parse_lesion_mask(
    mask: Any, path: str, *, number: int | None, rules: ReadRules, fail: Fail
) -> tuple[list[ParsedMaskSlice], ParsedMaskProvenance | None]:
    """Return a lesion's mask slices and the mask's provenance (none kept when `number` is None)."""
    if Tool.MASK not in rules.tools:
        fail(path, "the task does not offer lesion masks")
    parsed_slices = _parse_mask(mask, path, rules, fail)
    mask_slices = [ParsedMaskSlice(number, *parsed) for parsed in parsed_slices] if number is not None else []
    provenance = None
    if isinstance(mask, dict) and mask.get("provenance") is not None:
        parsed_provenance = parse_provenance(mask["provenance"], f"{path}.provenance", parsed_slices, rules, fail)
        if parsed_provenance is not None and number is not None:
            provenance = ParsedMaskProvenance(number, *parsed_provenance)
    return mask_slices, provenance


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
            or not all(is_finite_number(coordinate) for coordinate in point)
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
    if "length_mm" in value and (not is_finite_number(length_mm) or length_mm < 0):
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
    if (
        not isinstance(value, dict)
        or "slices" not in value
        or not set(value) <= MASK_FIELDS
        or not isinstance(value.get("slices"), list)
    ):
        fail(path, 'must be {"slices": [...]} with an optional "provenance"')
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


def parse_provenance(
    value: Any, path: str, submitted: list[tuple], rules: ReadRules, fail
) -> tuple[str, str, str, bool | None, float | None, int | None] | None:
    """Return (source, algorithm, algorithm_version, edited, edit_dice, proposal_pixels) of a mask's provenance.

    ``submitted`` are the mask's parsed slices (sop_instance_uid, frame, counts, pixel_count). A proposal's
    slices are checked like the mask's own; the Dice between it and the submitted mask is computed here.
    """
    if not isinstance(value, dict):
        fail(path, 'must be an object with "source" (hand, line or tap)')
        return None
    ok = True
    for name in sorted(set(value) - PROVENANCE_FIELDS):
        fail(f"{path}.{name}", "unknown field")
        ok = False
    source = value.get("source")
    if source not in PROVENANCE_SOURCES:
        fail(f"{path}.source", f"must be one of {', '.join(PROVENANCE_SOURCES)}")
        return None
    if source == "hand":
        for name in ("algorithm", "algorithm_version", "proposal"):
            if name in value:
                fail(f"{path}.{name}", "a hand-made mask has no proposal")
                ok = False
        return ("hand", "", "", None, None, None) if ok else None
    texts = {}
    for name in ("algorithm", "algorithm_version"):
        text = value.get(name)
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_ALGORITHM_CHARS:
            fail(f"{path}.{name}", f"must be a non-empty string of at most {MAX_ALGORITHM_CHARS} characters")
            ok = False
        texts[name] = text
    if "proposal" not in value:
        fail(f"{path}.proposal", "this field is required for a proposed mask")
        return None
    proposal = _parse_mask(value["proposal"], f"{path}.proposal", rules, fail)
    if isinstance(value["proposal"], dict) and "provenance" in value["proposal"]:
        fail(f"{path}.proposal.provenance", "unknown field")
        ok = False
    if not ok or (not proposal and value["proposal"] != {"slices": []}):
        return None
    dice = mask_dice(proposal, submitted, rules)
    edited = {(uid, frame): counts for uid, frame, counts, pixels in proposal if pixels} != {
        (uid, frame): counts for uid, frame, counts, pixels in submitted if pixels
    }
    proposal_pixels = sum(pixels for *_, pixels in proposal)
    return source, texts["algorithm"], texts["algorithm_version"], edited, dice, proposal_pixels


def mask_dice(first: list[tuple], second: list[tuple], rules: ReadRules) -> float | None:
    """Dice of two masks given as parsed slices (sop_instance_uid, frame, counts, pixel_count); None if both empty."""
    total = sum(pixels for *_, pixels in first) + sum(pixels for *_, pixels in second)
    if total == 0:
        return None
    second_by_key = {(uid, frame): counts for uid, frame, counts, pixels in second if pixels}
    overlap = 0
    for uid, frame, counts, pixels in first:
        other = second_by_key.get((uid, frame))
        if not pixels or other is None:
            continue
        geometry = rules.instances[uid]
        size = {"rows": geometry.rows, "columns": geometry.columns}
        overlap += int(
            np.intersect1d(
                foreground_indices(counts, **size), foreground_indices(other, **size), assume_unique=True
            ).size
        )
    return round(2.0 * overlap / total, 4)


def _check_counts(counts: Any, geometry: InstanceExtent, path: str, fail) -> int | None:
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
        if not is_whole_number(run) or run < 0 or (run == 0 and position > 0):
            fail(path, f"run {position} must be a positive integer (only the first run may be 0)")
            return None
        running += run
        if position % 2 == 1:
            ones += run
    if running != total:
        fail(path, f"runs sum to {running}, expected rows x columns = {geometry.rows} x {geometry.columns} = {total}")
        return None
    return ones


def _instance_frame(value: dict, path: str, rules: ReadRules, fail) -> tuple[InstanceExtent | None, int | None]:
    uid = value.get("sop_instance_uid")
    geometry = rules.instances.get(uid) if isinstance(uid, str) else None
    if "sop_instance_uid" in value and geometry is None:
        fail(f"{path}.sop_instance_uid", "is not an instance of this case's series")
    frame = value.get("frame")
    if "frame" not in value:
        return geometry, None
    if not is_whole_number(frame) or frame < 1:
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


@dataclass(frozen=True)
class ValidatedRead:
    """A checked read ready to store: its parsed form, the pk of every instance it may name, and extra rows."""

    parsed: ParsedRead
    instance_pks: dict[str, int]
    # Writes rows beside the Read (e.g. follow-up measurements) inside the storing transaction.
    store_extra: Callable[[Read], None] | None = None
    # The task's question version the read answered (None: the task asks no questions).
    question_set_id: int | None = None
