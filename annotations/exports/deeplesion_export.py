"""A task's consensus RECIST measurements as a DeepLesion-style `DL_info.csv`.

One row per accepted consensus lesion with a long axis, with exactly DeepLesion's columns
(`DEEPLESION_COLUMNS`), so loaders written for DeepLesion's DL_info.csv read it unchanged:
pixel coordinates of the RECIST end points on the key slice, a bounding box around them padded
by 5 pixels as DeepLesion's are, diameters in pixels, spacing, image size, the display window and
the patient's sex and age from the DICOM header. Patients, studies and series are numbered from 1
within the task over all its cases (`series_numbers`, which the predictions import reads back); slices
are numbered from 1 in the series' reading order. This module must never
name readers, and must never write an empty file: a task without consensus lines is refused with
`NoRecistLesions`.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

from annotations.exports import csv_export
from annotations.exports.sources import SeriesCache, SeriesSources
from annotations.models import Case, CaseConsensus, ConsensusLesion, Task

DEEPLESION_COLUMNS = (
    "File_name",
    "Patient_index",
    "Study_index",
    "Series_ID",
    "Key_slice_index",
    "Measurement_coordinates",
    "Bounding_boxes",
    "Lesion_diameters_Pixel_",
    "Normalized_lesion_location",
    "Coarse_lesion_type",
    "Possibly_noisy",
    "Slice_range",
    "Spacing_mm_px_",
    "Image_size",
    "DICOM_windows",
    "Patient_gender",
    "Patient_age",
    "Train_Val_Test",
)
# DeepLesion's boxes are the RECIST end points' extent padded by 5 pixels on each side.
BOX_PADDING_PX = 5.0
UNKNOWN_LESION_TYPE = -1
# A patient-level split, as DeepLesion's: 70 % train (1), 15 % validation (2), 15 % test (3).
SPLIT_PERCENT = ((70, 1), (85, 2), (100, 3))


class NoRecistLesions(ValueError):
    """A DeepLesion export of a task whose consensus has no measured lesion."""


@dataclass(frozen=True)
class SeriesNumbers:
    patient: int
    study: int
    series: int


def series_numbers(task: Task) -> dict[int, SeriesNumbers]:
    """Number the task's patients, their studies and the studies' series from 1, in case order; keyed by series id.

    Every case of the task counts, measured or not, so a series keeps its numbers while consensus changes and
    a DeepLesion-style CSV of predictions (annotations/predictions/deeplesion_import.py) finds its case by them.
    """
    patients: dict[str, int] = {}
    studies: dict[tuple[str, int], int] = {}
    series: dict[int, SeriesNumbers] = {}
    per_patient: dict[str, int] = {}
    per_study: dict[int, int] = {}
    for case in Case.objects.filter(task=task).select_related("series__study").order_by("pk"):
        study = case.series.study
        patient_key = study.patient_id or f"study-{study.pk}"
        patients.setdefault(patient_key, len(patients) + 1)
        if (patient_key, study.pk) not in studies:
            per_patient[patient_key] = per_patient.get(patient_key, 0) + 1
            studies[(patient_key, study.pk)] = per_patient[patient_key]
        if case.series_id not in series:
            per_study[study.pk] = per_study.get(study.pk, 0) + 1
            series[case.series_id] = SeriesNumbers(
                patients[patient_key], studies[(patient_key, study.pk)], per_study[study.pk]
            )
    return series


def measured_consensus(task: Task) -> list[CaseConsensus]:
    """The current consensus of each case that has an accepted lesion with a long axis, in case order."""
    result, seen = [], set()
    for row in csv_export.current_consensus(task).prefetch_related("lesions"):
        if row.case_id in seen:
            continue
        seen.add(row.case_id)
        if any(lesion.accepted and lesion.long_axis for lesion in row.lesions.all()):
            result.append(row)
    return result


def check_has_lesions(task: Task) -> None:
    """Raise NoRecistLesions naming the task when its DeepLesion CSV would have no rows."""
    if task.is_follow_up or not measured_consensus(task):
        raise NoRecistLesions(
            f"task {task.pk} ({task.name}) has no consensus lesion with a long axis: nothing to write as "
            "DeepLesion RECIST rows. Compute consensus of reads with long axes first."
        )


def split_of(patient_key: str) -> int:
    """DeepLesion's Train_Val_Test (1, 2, 3) of a patient, the same on every export (hash of the patient)."""
    bucket = int(hashlib.sha256(patient_key.encode()).hexdigest()[:8], 16) % 100
    return next(split for limit, split in SPLIT_PERCENT if bucket < limit)


def _numbers_text(values, digits: int = 4) -> str:
    return ", ".join(f"{round(float(value), digits):g}" for value in values)


def _slice_interval_mm(sources: SeriesSources) -> float | None:
    positions = [instance.sort_position_mm for instance in sources.instances if instance.sort_position_mm is not None]
    steps = [abs(b - a) for a, b in zip(positions, positions[1:], strict=False) if abs(b - a) > 1e-6]
    return statistics.median(steps) if steps else None


def _window(instance) -> tuple[float, float] | None:
    if not (instance.window_centers and instance.window_widths):
        return None
    center, width = float(instance.window_centers[0]), float(instance.window_widths[0])
    return center - width / 2, center + width / 2


def _age_years(value) -> str:
    """'062Y' -> '62'; months, weeks and days give a fraction of a year; anything else ''."""
    match = re.fullmatch(r"(\d{1,3})([DWMY])", str(value or "").strip())
    if not match:
        return ""
    years = int(match[1]) / {"D": 365.25, "W": 52.18, "M": 12, "Y": 1}[match[2]]
    return f"{years:g}" if match[2] == "Y" else f"{years:.2f}"


def _point(line: dict, key: str) -> tuple[float, float]:
    column, row = line[key]
    return float(column), float(row)


def lesion_row(*, lesion: ConsensusLesion, consensus: CaseConsensus, sources: SeriesSources, numbers: SeriesNumbers):
    """Return the DL_info.csv row of one consensus lesion (long axis required, short axis optional)."""
    long_axis = lesion.long_axis
    instance = sources.by_uid(long_axis["sop_instance_uid"])
    frame = int(long_axis.get("frame", 1))
    key_slice = sources.slice_index(instance_id=instance.pk, frame=frame) + 1
    long_points = [_point(long_axis, "start"), _point(long_axis, "end")]
    short_axis = lesion.short_axis
    if short_axis and short_axis.get("sop_instance_uid") == instance.sop_instance_uid:
        short_points = [_point(short_axis, "start"), _point(short_axis, "end")]
        short_px = math.dist(*short_points)
    else:
        # A long axis only: a zero-length short axis at its midpoint keeps DeepLesion's 8 numbers.
        middle = tuple((a + b) / 2 for a, b in zip(*long_points, strict=True))
        short_points, short_px = [middle, middle], 0.0
    points = long_points + short_points
    columns = [point[0] for point in points]
    rows = [point[1] for point in points]
    box = (
        max(min(columns) - BOX_PADDING_PX, 0.0),
        max(min(rows) - BOX_PADDING_PX, 0.0),
        min(max(columns) + BOX_PADDING_PX, instance.columns - 1.0),
        min(max(rows) + BOX_PADDING_PX, instance.rows - 1.0),
    )
    n_slices = sum(item.number_of_frames for item in sources.instances)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    row_spacing, column_spacing = (instance.pixel_spacing_mm or [1.0, 1.0])[:2]
    interval = _slice_interval_mm(sources)
    window = _window(instance)
    header = sources.header(instance)
    sex = str(header.get("PatientSex") or "")
    study = consensus.case.series.study
    patient_key = study.patient_id or f"study-{study.pk}"
    return {
        "File_name": f"{numbers.patient:06d}_{numbers.study:02d}_{numbers.series:02d}_{key_slice:03d}.png",
        "Patient_index": numbers.patient,
        "Study_index": numbers.study,
        "Series_ID": numbers.series,
        "Key_slice_index": key_slice,
        "Measurement_coordinates": _numbers_text(value for point in points for value in point),
        "Bounding_boxes": _numbers_text(box),
        "Lesion_diameters_Pixel_": _numbers_text([math.dist(*long_points), short_px]),
        "Normalized_lesion_location": _numbers_text(
            [centre[0] / instance.columns, centre[1] / instance.rows, (key_slice - 1) / max(n_slices - 1, 1)]
        ),
        "Coarse_lesion_type": UNKNOWN_LESION_TYPE,
        "Possibly_noisy": int(consensus.low_agreement),
        "Slice_range": f"1, {n_slices}",
        "Spacing_mm_px_": _numbers_text([column_spacing, row_spacing, interval if interval else 0.0]),
        "Image_size": f"{instance.rows}, {instance.columns}",
        "DICOM_windows": _numbers_text(window) if window else "",
        "Patient_gender": sex if sex in ("M", "F", "O") else "",
        "Patient_age": _age_years(header.get("PatientAge")),
        "Train_Val_Test": split_of(patient_key),
    }


def iter_deeplesion_rows(*, task: Task) -> Iterator[dict]:
    """Yield one DL_info.csv row per accepted consensus lesion with a long axis; each row carries its case id.

    The `case_id` key is for progress only: it is not a DeepLesion column and is not written.
    """
    check_has_lesions(task)
    rows = measured_consensus(task)
    numbers = series_numbers(task)
    cache = SeriesCache()
    for consensus in rows:
        sources = cache.get(consensus.case.series)
        for lesion in consensus.lesions.all():
            if lesion.accepted and lesion.long_axis:
                row = lesion_row(
                    lesion=lesion, consensus=consensus, sources=sources, numbers=numbers[consensus.case.series_id]
                )
                yield {**row, "case_id": consensus.case_id}
