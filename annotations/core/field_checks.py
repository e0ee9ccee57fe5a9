"""The leaf checks every write API runs on what a client sent: text, whole numbers, finite numbers, date-times.

One answer everywhere to "can we keep this?": text must be storable and exportable in every place we put it
(PostgreSQL refuses NUL, UTF-8 refuses an unpaired surrogate such as the JSON escape "\\ud800", and a control
character breaks CSV, DICOM SR and the console), a whole number must fit the database column it goes to, a
number must be finite, and a date-time must exist (no 30 February, no +25:00 offset) and be representable
once converted to UTC. Each check returns the problem as a message (None when the value is fine), so the
callers keep reporting errors keyed by their own JSON paths. Pure: no Django, nothing else of the project.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

# Columns the read path writes (Django's documented ranges for every supported database).
SMALL_INT_MAX = 32_767  # PositiveSmallIntegerField: lesion numbers
INT_MAX = 2_147_483_647  # PositiveIntegerField / IntegerField: frames, versions
BIG_INT_MAX = 9_223_372_036_854_775_807  # BigAutoField: ids

# Never storable or exportable: NUL (PostgreSQL text refuses it), C0 controls, DEL and C1 controls (CSV,
# XML-based exports and terminals misread them) and unpaired surrogates (not encodable as UTF-8 at all).
# Tab is allowed everywhere; a multi-line field (a comment, a free-text answer) also takes line breaks.
_NOT_ONE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Return why `value` cannot be stored and exported as text (naming the character), or None when it can."""
    found = (_NOT_MULTI_LINE if multiline else _NOT_ONE_LINE).search(value)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        what = f"an unpaired surrogate (U+{code:04X}), which is not text"
    elif code == 0:
        what = "a NUL character (U+0000)"
    elif code in (0x0A, 0x0D):
        what = f"a line break (U+{code:04X}) in a one-line field"
    else:
        what = f"a control character (U+{code:04X})"
    return f"contains {what} at position {found.start()}"


def is_text(value: Any, *, multiline: bool = False) -> bool:
    """True when `value` is a str that text_problem accepts."""
    return isinstance(value, str) and text_problem(value, multiline=multiline) is None


def is_whole_number(value: Any) -> bool:
    """True for a JSON integer (a Python int that is not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def whole_number_in(value: Any, low: int, high: int) -> bool:
    """True for a whole number from `low` to `high` (both included)."""
    return is_whole_number(value) and low <= value <= high


def is_finite_number(value: Any) -> bool:
    """True for an int or float (not a bool) that is finite as a float: a 400-digit integer is not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def parse_aware_datetime(value: Any) -> tuple[datetime | None, str | None]:
    """Return (the date-time, None) for an ISO 8601 string with a time zone, else (None, why not).

    Never raises: a date that does not exist, an offset beyond ±24 h or a year whose UTC form overflows is
    a problem like any other. Kept within 1970-9000 so every database and export can hold it.
    """
    problem = "must be an ISO 8601 date-time, e.g. 2026-11-25T10:31:02.120Z"
    if not isinstance(value, str) or len(value) > 64 or text_problem(value) is not None:
        return None, problem
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        detail = str(error)
        if "offset" in detail:
            return None, f"{problem}; the time zone offset must be within ±24 hours"
        if "out of range" in detail or "must be in" in detail:
            return None, f"{problem}; {detail}"
        return None, problem
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None, "must include a time zone (Z or +hh:mm)"
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        return None, f"{problem}; it is outside the years 1970 to 9000"
    if not _EARLIEST <= in_utc < _LATEST:
        return None, f"{problem}; it is outside the years 1970 to 9000"
    return parsed, None


def safe_text(value: str) -> str:
    """Return `value` with unpaired surrogates spelled as escapes, so an error message that quotes it can be sent."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def unstorable_json(value: Any, path: str = "", *, limit: int = 20) -> dict[str, list[str]]:
    """Return the problems of a parsed JSON document that no store can keep, by JSON path (empty when none).

    Looks at every key and string for NUL and unpaired surrogates, and at every integer for the 64-bit range
    (a JSONField stores the whole document, keys and unknown fields included). Stops after `limit` problems.
    """
    problems: dict[str, list[str]] = {}
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack and len(problems) < limit:
        item, where = stack.pop()
        if isinstance(item, str):
            if (found := _UNSTORABLE.search(item)) is not None:
                problems.setdefault(where, []).append(_unstorable_message(found))
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{safe_text(key)}" if where else safe_text(key)
                if (found := _UNSTORABLE.search(key)) is not None:
                    problems.setdefault(child_path, []).append(f"the field name {_unstorable_message(found)}")
                    continue
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
        elif is_whole_number(item) and not -BIG_INT_MAX <= item <= BIG_INT_MAX:
            problems.setdefault(where, []).append(f"a whole number beyond ±{BIG_INT_MAX}")
    return problems


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_message(found: re.Match) -> str:
    code = ord(found.group())
    what = "a NUL character (U+0000)" if code == 0 else f"an unpaired surrogate (U+{code:04X}), which is not text"
    return f"contains {what} at position {found.start()}"
