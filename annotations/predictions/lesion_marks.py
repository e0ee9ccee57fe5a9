"""A model's RECIST marks of a case (long axis, short axis, box), checked on the case's images and stored.

The SR and DeepLesion readers (sr_import, deeplesion_import) turn their files into `LesionMark`s in
read-format image coordinates ((0, 0) the centre of the top-left pixel, docs/read-format.md);
`checked_mark` holds each one to the rules a reader's line must meet (on an image of the case, inside
it, two distinct end points, an image with PixelSpacing), orders the axes so the long axis is the
longer, and `store_lesion_marks` replaces the case's marks by that model. This module must never touch
reads, answer keys, consensus or a prediction's masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from annotations.core.geometry import line_length_mm
from annotations.models import Case, ModelPrediction
from annotations.predictions.errors import PredictionError
from viewer.models import Instance

Point = tuple[float, float]


@dataclass(frozen=True)
class LesionMark:
    """One lesion's lines on one frame, in image pixels (column, row)."""

    sop_instance_uid: str
    frame: int
    long_axis: tuple[Point, Point]
    short_axis: tuple[Point, Point] | None = None
    box: tuple[float, float, float, float] | None = None
    label: str = ""

    def as_json(self, *, lesion: int) -> dict:
        """The mark as `ModelPrediction.lesion_marks` stores it."""

        def line(points):
            return None if points is None else {"start": list(points[0]), "end": list(points[1])}

        return {
            "lesion": lesion,
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "long_axis": line(self.long_axis),
            "short_axis": line(self.short_axis),
            "box": None if self.box is None else list(self.box),
            "label": self.label,
        }


def checked_mark(mark: LesionMark, *, instance: Instance, name: str) -> LesionMark:
    """Return the mark with its long axis the longer line, or PredictionError naming `name` and the fault.

    A zero-length short axis (DeepLesion's stand-in for "none") becomes None; a box is clipped to the image.
    """
    if not 1 <= mark.frame <= instance.number_of_frames:
        raise PredictionError(f"{name}: frame {mark.frame} is not a frame of image {instance.sop_instance_uid}")
    spacing = instance.pixel_spacing_mm
    if not spacing or len(spacing) != 2:
        raise PredictionError(f"{name}: image {instance.sop_instance_uid} has no PixelSpacing, so no lines")
    for axis_name, axis in (("long axis", mark.long_axis), ("short axis", mark.short_axis)):
        for point in axis or ():
            column, row = point
            if not (math.isfinite(column) and math.isfinite(row)):
                raise PredictionError(f"{name}: {axis_name} point {point} is not finite")
            if not (-0.5 <= column <= instance.columns - 0.5 and -0.5 <= row <= instance.rows - 0.5):
                raise PredictionError(
                    f"{name}: {axis_name} point ({column:g}, {row:g}) is outside image {instance.sop_instance_uid} "
                    f"({instance.columns} columns x {instance.rows} rows)"
                )
    if mark.long_axis[0] == mark.long_axis[1]:
        raise PredictionError(f"{name}: the long axis starts and ends at the same point")
    short_axis = mark.short_axis if mark.short_axis and mark.short_axis[0] != mark.short_axis[1] else None
    long_axis = mark.long_axis
    if short_axis and _length_mm(short_axis, spacing) > _length_mm(long_axis, spacing):
        long_axis, short_axis = short_axis, long_axis  # RECIST: the long axis is the longest diameter
    box = mark.box
    if box is not None:
        if not all(math.isfinite(value) for value in box) or box[0] > box[2] or box[1] > box[3]:
            raise PredictionError(f"{name}: box {list(box)} is not x1, y1, x2, y2 with x1 <= x2 and y1 <= y2")
        low, high_column, high_row = -0.5, instance.columns - 0.5, instance.rows - 0.5
        box = (
            min(max(box[0], low), high_column),
            min(max(box[1], low), high_row),
            min(max(box[2], low), high_column),
            min(max(box[3], low), high_row),
        )
    return replace(mark, long_axis=long_axis, short_axis=short_axis, box=box)


def _length_mm(points: tuple[Point, Point], spacing) -> float:
    return line_length_mm(start=points[0], end=points[1], pixel_spacing_mm=spacing)


def store_lesion_marks(*, case: Case, model_name: str, source_file: str, marks: list[LesionMark]) -> ModelPrediction:
    """Replace the case's RECIST marks by `model_name` (its masks stay); lesions numbered from 1 in file order."""
    if not model_name.strip():
        raise PredictionError("a prediction needs a model name")
    prediction, _ = ModelPrediction.objects.update_or_create(
        case=case,
        model_name=model_name.strip(),
        defaults={
            "source_file": source_file[:255],
            "lesion_marks": [mark.as_json(lesion=number) for number, mark in enumerate(marks, start=1)],
        },
    )
    return prediction
