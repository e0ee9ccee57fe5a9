"""Display and team names as people see them: one normal form, and a skeleton that look-alike names share.

A name is shown on the public leaderboard, so two names that look the same on a screen must not belong
to two readers (or two teams). `normalise_name` gives the one stored form: Unicode NFKC (full-width
letters, ligatures and compatibility spaces become plain ones), invisible and direction-control
characters removed (zero-width spaces and joiners, bidi overrides and isolates, soft hyphens, variation
selectors, every default-ignorable code point) and runs of whitespace collapsed to one space.
`name_skeleton` is the Unicode TR39 skeleton of that form (from `disarm`, case-folded, with TR39's
digit classes: "0" looks like "O", "1" like "l"), so "Dr Ada Dem\u043e" with a Cyrillic o and
"DR ADA DEM0" share the skeleton of "Dr Ada Demo". Stored in an indexed column, it makes "is this name
confusable with an existing one?" a single query. This module is pure (no Django, no database) and must
never be used to show a name: a skeleton is a key, not a spelling.
"""

from __future__ import annotations

import re
import unicodedata

from disarm import skeleton_key

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) plus the Hangul fillers, which render as
# blank space without being whitespace: all of them can make two names look equal and compare different.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Controls, format characters (zero-width, bidi), surrogates, private use and unassigned code points.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_WHITESPACE = re.compile(r"\s+")


def is_invisible(char: str) -> bool:
    """Return True for a character that shows nothing (or only changes direction) where it stands."""
    if char.isspace():
        return False
    code = ord(char)
    if any(low <= code <= high for low, high in _IGNORABLE_RANGES):
        return True
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


def normalise_name(name: str) -> str:
    """Return the stored form of a name: NFKC, invisible and direction controls removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", name or "")
    text = "".join(char for char in text if not is_invisible(char))
    # Again after removal: a zero-width character between a letter and its accent blocked composition.
    text = unicodedata.normalize("NFKC", text)
    return _WHITESPACE.sub(" ", text).strip()


def name_skeleton(name: str) -> str:
    """Return the TR39 skeleton of a name (case-folded); equal skeletons mean the names look alike.

    The empty string when nothing of the name survives (a name made only of invisible characters),
    which callers treat as "no skeleton to compare".
    """
    return skeleton_key(normalise_name(name), digit_policy="tr39")
