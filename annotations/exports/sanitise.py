"""What an export does with a stored value that cannot go into its format as it is: replace, shorten, neutralise.

Exports must complete whatever the database holds, including rows stored before input was checked
at the door: text with lone surrogates (not encodable as UTF-8) or control characters, answers of
the wrong shape, numbers no format can hold. Every writer passes its text through here:
`text` (any format), `csv_cell` (every CSV cell, with OWASP's CSV-injection neutralisation) and
`dicom_text` (DICOM's text VRs: repertoire and length limits). Nothing here raises on a value;
each change is counted in the export's report (`counting`), so a researcher sees what was changed
and how often. Pure: no Django, no database, no file; the only state is the count of the export
being written, held in a context variable.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")

REPLACEMENT = "\ufffd"

# What the report counts (ExportJob.warnings, ExportResult.warnings): values, not characters.
UNENCODABLE_TEXT = "unencodable_text_replaced"
CONTROL_CHARACTERS = "control_characters_replaced"
FORMULA_CELLS = "formula_cells_neutralised"
DICOM_TEXT_SHORTENED = "dicom_text_shortened"
DICOM_TEXT_EMPTY = "dicom_text_empty_replaced"
NON_FINITE_NUMBERS = "non_finite_numbers_left_out"
UNEXPECTED_SHAPES = "answers_of_unexpected_shape_ignored"
DOCUMENTS_SKIPPED = "dicom_documents_skipped"
READS_SKIPPED = "reads_left_out"
CONSENSUS_SKIPPED = "consensus_results_left_out"

# Lone surrogates cannot be encoded as UTF-8 (a JSON text column happily stores "\ud800").
_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 and C1 controls, DEL; tab, line feed and carriage return are ordinary in CSV cells and long DICOM text.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROLS_AND_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f]")
# OWASP "CSV Injection": a cell starting with one of these is run as a formula by spreadsheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

# DICOM PS3.5 6.2: maximum characters per value of the text VRs the exports write (None: no limit we can reach).
DICOM_MAX_LENGTH = {"SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240, "UT": None, "UC": None, "CS": 16}
# VRs whose values may hold line breaks; the others are single lines, and "\" separates their values.
_MULTILINE_VRS = {"ST", "LT", "UT"}

_counts: ContextVar[Counter[str] | None] = ContextVar("export_warnings", default=None)


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count what the code run inside the block changed; yield the counter (empty when nothing was)."""
    counts: Counter[str] = Counter()
    token = _counts.set(counts)
    try:
        yield counts
    finally:
        _counts.reset(token)


def note(kind: str, n: int = 1) -> None:
    """Count `n` changes of one kind in the export being written (nothing outside `counting`)."""
    counts = _counts.get()
    if counts is not None:
        counts[kind] += n


def text(value: Any, *, line_breaks: bool = True, count: bool = True) -> str:
    """Return `value` as text encodable as UTF-8: lone surrogates and control characters become U+FFFD.

    Tab, line feed and carriage return stay unless `line_breaks` is False. Lists and dicts (answers of
    an unexpected shape) are written as JSON.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list)) else str(value)
    if value.isprintable():  # the common case: no surrogate, no control character (both are unprintable)
        return value
    value, surrogates = _SURROGATES.subn(REPLACEMENT, value)
    value, controls = (_CONTROLS if line_breaks else _CONTROLS_AND_BREAKS).subn(REPLACEMENT, value)
    if count:
        if surrogates:
            note(UNENCODABLE_TEXT)
        if controls:
            note(CONTROL_CHARACTERS)
    return value


def is_number_text(value: str) -> bool:
    """True for text a spreadsheet reads as a plain number (`-3.5`, `+2`, `1e-3`), never as a formula."""
    return _NUMBER.fullmatch(value) is not None


def csv_cell(value: Any, *, raw: bool = False) -> Any:
    """Return a value as a CSV cell: numbers and booleans as they are, text made safe.

    Text is made encodable (`text`); unless `raw`, a cell a spreadsheet would run as a formula (starting
    with =, +, -, @, tab or carriage return, and not a plain number) gets a leading single quote (OWASP).
    """
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    cell = text(value)
    if not raw and cell.startswith(FORMULA_PREFIXES) and not is_number_text(cell):
        note(FORMULA_CELLS)
        return "'" + cell
    return cell


def dicom_text(value: Any, vr: str, *, fallback: str = "") -> str:
    """Return text that a DICOM value of this VR may hold (UTF-8 repertoire, ISO_IR 192), shortened to its limit.

    Single-line VRs (SH, LO, PN, CS, UC) lose line breaks and the value separator "\\"; PN also loses its
    component separators "^" and "=". Blank results become `fallback`, for values DICOM needs.
    """
    single_line = vr not in _MULTILINE_VRS
    result = text(value, line_breaks=not single_line)
    if single_line:
        result = result.replace("\\", "/")
    if vr == "PN":
        result = re.sub(r"[\^=]", " ", result)
    if vr in ("SH", "LO", "PN", "CS", "UC"):
        result = result.strip()
    limit = DICOM_MAX_LENGTH.get(vr)
    if limit is not None and len(result) > limit:
        note(DICOM_TEXT_SHORTENED)
        result = result[:limit].rstrip() if single_line else result[:limit]
    if not result.strip() and fallback:
        if value not in (None, ""):
            note(DICOM_TEXT_EMPTY)
        result = fallback
    return result


def finite(value: Any) -> float | None:
    """Return a stored number as a finite float, or None (counted) for NaN, infinity or what is no number."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        note(NON_FINITE_NUMBERS)
        return None
    if not math.isfinite(number):
        note(NON_FINITE_NUMBERS)
        return None
    return number


def mapping(value: Any) -> dict:
    """Return stored answers as a dict; anything else (a list, a number, text) counts and gives {}."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    note(UNEXPECTED_SHAPES)
    return {}


def or_skip(build: Callable[..., T], /, *, what: str, kind: str, **arguments: Any) -> T | None:
    """Return `build(**arguments)`, or None (logged, counted as `kind`) when stored data makes it raise.

    The last guard of "exports never fail on stored data": values are cleaned where they enter a
    format, and a document that still cannot be made is left out, never fatal.
    """
    try:
        return build(**arguments)
    except Exception:  # noqa: BLE001 - one bad stored row must not sink the export of a whole task
        logger.warning("export left out %s", what, exc_info=True)
        note(kind)
        return None


def rows_or_skip(rows: Callable[..., Iterable[T]], /, *, what: str, kind: str, **arguments: Any) -> list[T]:
    """Return the rows `rows(**arguments)` yields, or [] (logged, counted as `kind`) when one of them cannot be made."""
    return or_skip(lambda: list(rows(**arguments)), what=what, kind=kind) or []
