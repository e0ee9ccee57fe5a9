"""Builders for consensus tests: reads with marks and masks made directly as rows, in image coordinates.

The small CT of tests/conftest.py has 64 x 64 pixels of 1 mm and 9 slices 2.5 mm apart; its one lesion
(16 x 10 x 12 mm) is centred at column 23.5, row 37.5 on the middle slice (index 4).
"""

from __future__ import annotations

import numpy as np

from annotations.core import mask_rle
from annotations.models import Mark, MaskSlice, Read
from annotations.models.reads import MarkKind
from tests.factories import ReadFactory

LESION_CENTER = (23.5, 37.5)  # column, row on the middle slice
LESION_SLICE = 4
LESION_LONG_MM = 16.0
LESION_SHORT_MM = 10.0


def instances(series):
    return list(series.instances.order_by("sort_position_mm"))


def add_read(
    case,
    reader,
    *,
    lesions=(),
    no_lesion=False,
    skip=False,
    version=1,
    duration_s=30.0,
    supersedes=None,
    answers=None,
    question_set=None,
) -> Read:
    """Store a read. Each lesion: {"long": (slice, (c0, r0), (c1, r1)), "short": ..., "mask": {slice: bool array}}.

    `answers` is the Read.answers value ({"case": {...}, "lesions": {"1": {...}}}); reader=None stores an answer key.
    """
    read = ReadFactory(
        case=case,
        reader=reader,
        no_lesion=no_lesion,
        skip=skip,
        version=version,
        duration_s=duration_s,
        supersedes=supersedes,
        answers=answers or {},
        question_set=question_set,
        is_answer_key=reader is None,
    )
    frames = instances(case.series)
    for number, lesion in enumerate(lesions, start=1):
        for kind, key in ((MarkKind.LONG_AXIS, "long"), (MarkKind.SHORT_AXIS, "short")):
            if key not in lesion:
                continue
            slice_index, start, end = lesion[key]
            instance = frames[slice_index]
            spacing = instance.pixel_spacing_mm
            length = float(np.hypot((end[0] - start[0]) * spacing[1], (end[1] - start[1]) * spacing[0]))
            Mark.objects.create(
                read=read,
                lesion_index=number,
                kind=kind,
                instance=instance,
                frame=1,
                start_col=start[0],
                start_row=start[1],
                end_col=end[0],
                end_row=end[1],
                length_mm=length,
            )
        for slice_index, bitmap in (lesion.get("mask") or {}).items():
            if not bitmap.any():
                continue
            MaskSlice.objects.create(
                read=read,
                lesion_index=number,
                instance=frames[slice_index],
                frame=1,
                counts=mask_rle.encode(bitmap),
                pixel_count=int(bitmap.sum()),
            )
    return read


def horizontal_line(*, slice_index=LESION_SLICE, center=LESION_CENTER, length_px=LESION_LONG_MM, shift=(0.0, 0.0)):
    c, r = center[0] + shift[0], center[1] + shift[1]
    return (slice_index, (c - length_px / 2, r), (c + length_px / 2, r))


def ellipse_mask(*, center=LESION_CENTER, radii=(8.0, 5.0), shape=(64, 64), shift=(0.0, 0.0)) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    c, r = center[0] + shift[0], center[1] + shift[1]
    return ((cols - c) / radii[0]) ** 2 + ((rows - r) / radii[1]) ** 2 <= 1.0
