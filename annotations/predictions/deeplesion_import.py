"""A model's RECIST marks from a DeepLesion-style CSV (the columns of DeepLesion's DL_info.csv, as our export writes).

A row is one lesion. Its case: the `series_instance_uid` column when the file has one, else
`Patient_index`, `Study_index` and `Series_ID` as our `deeplesion` export numbers the task's series
(`deeplesion_export.series_numbers`), so export -> model -> import comes back to the same series.
`Key_slice_index` counts from 1 in the series' reading order (our export's convention and DeepLesion's,
whose key slice is the 1-based number of its PNG); `Measurement_coordinates` holds the long axis
x1, y1, x2, y2 then the short axis x3, y3, x4, y4 in pixels (column, row); `Bounding_boxes` the box
x1, y1, x2, y2; `Image_size` (rows, columns), when filled, must be the series' (a row numbered for
another task would otherwise land on a wrong series of the same size unnoticed only by luck).
A bad row is reported by its row number as a spreadsheet shows it (the header is row 1) and skipped;
the other rows still count. This module must never store anything: services.py does.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from annotations.exports.deeplesion_export import series_numbers
from annotations.exports.sources import SeriesSources
from annotations.models import Case, Task
from annotations.predictions.errors import PredictionError
from annotations.predictions.lesion_marks import LesionMark, checked_mark

SERIES_UID_COLUMN = "series_instance_uid"
NUMBER_COLUMNS = ("Patient_index", "Study_index", "Series_ID")
REQUIRED_COLUMNS = ("Key_slice_index", "Measurement_coordinates")
# DeepLesion's Coarse_lesion_type codes (its README); -1 is "unknown", as our export writes.
LESION_TYPES = {
    1: "bone",
    2: "abdomen",
    3: "mediastinum",
    4: "liver",
    5: "lung",
    6: "kidney",
    7: "soft tissue",
    8: "pelvis",
}


@dataclass
class DeepLesionFile:
    """What one CSV gave: marks per case (in row order) and the rows refused, each with its reason."""

    marks: dict[Case, list[LesionMark]] = field(default_factory=dict)
    row_errors: list[str] = field(default_factory=list)


def _numbers(text: str, *, column: str, counts: tuple[int, ...]) -> list[float]:
    """The numbers of a DeepLesion cell ('1.5, 2, 3, 4'); ValueError naming the column when malformed."""
    if text.startswith("'-"):
        text = text[1:]  # our export quotes a cell starting with "-" against CSV injection (sanitise.csv_cell)
    try:
        values = [float(part) for part in text.split(",")] if text.strip() else []
    except ValueError:
        raise ValueError(f"{column} {text!r} is not numbers separated by commas") from None
    if len(values) not in counts:
        raise ValueError(f"{column} has {len(values)} numbers, expected {' or '.join(map(str, counts))}")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"{column} {text!r} holds a number that is not finite")
    return values


def _integer(text: str, *, column: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a whole number") from None
    if not value.is_integer():
        raise ValueError(f"{column} {text!r} is not a whole number")
    return int(value)


class _Cases:
    """Finds a row's case and its series' slices, loading each series once."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._by_numbers: dict[tuple[int, int, int], int] | None = None
        self._cases: dict[int, Case] = {}
        self._sources: dict[int, SeriesSources] = {}

    def by_series_uid(self, uid: str) -> Case:
        case = Case.objects.filter(task=self.task, series__series_instance_uid=uid).select_related("series").first()
        if case is None:
            raise ValueError(f"series {uid} is not a case of task {self.task.pk}")
        return self._cases.setdefault(case.series_id, case)

    def by_numbers(self, patient: int, study: int, series: int) -> Case:
        if self._by_numbers is None:
            self._by_numbers = {
                (n.patient, n.study, n.series): series_id for series_id, n in series_numbers(self.task).items()
            }
        series_id = self._by_numbers.get((patient, study, series))
        if series_id is None:
            raise ValueError(
                f"task {self.task.pk} has no series numbered patient {patient}, study {study}, series {series}"
            )
        if series_id not in self._cases:
            self._cases[series_id] = (
                Case.objects.filter(task=self.task, series_id=series_id).select_related("series").first()
            )
        return self._cases[series_id]

    def sources(self, case: Case) -> SeriesSources:
        if case.series_id not in self._sources:
            self._sources[case.series_id] = SeriesSources.load(case.series)
        return self._sources[case.series_id]


def _slice(sources: SeriesSources, key_slice: int):
    """The (instance, frame) of a 1-based slice number in the series' reading order."""
    remaining = key_slice
    for instance in sources.instances:
        if remaining <= instance.number_of_frames:
            return instance, remaining
        remaining -= instance.number_of_frames
    return None


def _row_mark(row: dict, *, cases: _Cases, name: str) -> tuple[Case, LesionMark]:
    uid = (row.get(SERIES_UID_COLUMN) or "").strip()
    if uid:
        case = cases.by_series_uid(uid)
    else:
        case = cases.by_numbers(*(_integer(row.get(column) or "", column=column) for column in NUMBER_COLUMNS))
    sources = cases.sources(case)
    key_slice = _integer(row.get("Key_slice_index") or "", column="Key_slice_index")
    n_slices = sum(instance.number_of_frames for instance in sources.instances)
    place = _slice(sources, key_slice) if key_slice >= 1 else None
    if place is None:
        raise ValueError(f"Key_slice_index {key_slice} is not a slice of case {case.pk} (1 to {n_slices})")
    instance, frame = place
    size = (row.get("Image_size") or "").strip()
    if size:
        rows, columns = _numbers(size, column="Image_size", counts=(2,))
        if (rows, columns) != (instance.rows, instance.columns):
            raise ValueError(
                f"Image_size {rows:g}, {columns:g} is not case {case.pk}'s {instance.rows}, {instance.columns}"
            )
    points = _numbers(row.get("Measurement_coordinates") or "", column="Measurement_coordinates", counts=(4, 8))
    box = _numbers(row.get("Bounding_boxes") or "", column="Bounding_boxes", counts=(0, 4))
    lesion_type = (row.get("Coarse_lesion_type") or "").strip()
    label = LESION_TYPES.get(_integer(lesion_type, column="Coarse_lesion_type"), "") if lesion_type else ""
    mark = LesionMark(
        sop_instance_uid=instance.sop_instance_uid,
        frame=frame,
        long_axis=((points[0], points[1]), (points[2], points[3])),
        short_axis=((points[4], points[5]), (points[6], points[7])) if len(points) == 8 else None,
        box=tuple(box) if box else None,
        label=label,
    )
    return case, checked_mark(mark, instance=instance, name=name)


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        missing = [column for column in REQUIRED_COLUMNS if column not in columns]
        if SERIES_UID_COLUMN not in columns:
            missing += [column for column in NUMBER_COLUMNS if column not in columns]
        if missing:
            raise PredictionError(
                f"{path.name} lacks the column(s) {', '.join(missing)}: a DeepLesion-style CSV needs "
                f"{', '.join(REQUIRED_COLUMNS)} and either {SERIES_UID_COLUMN} or {', '.join(NUMBER_COLUMNS)}"
            )
        yield from enumerate(reader, start=2)


def deeplesion_marks(*, task: Task, path: Path) -> DeepLesionFile:
    """Read the CSV at path into marks per case of the task; bad rows are listed, never fatal to the others."""
    path = Path(path)
    cases = _Cases(task)
    result = DeepLesionFile()
    try:
        for number, row in _rows(path):
            name = f"{path.name}, row {number}"
            if None in row:  # csv puts cells beyond the header under the key None
                result.row_errors.append(f"{name}: more cells than the header has columns")
                continue
            try:
                case, mark = _row_mark(row, cases=cases, name=name)
            except PredictionError as error:
                result.row_errors.append(str(error))
                continue
            except ValueError as error:
                result.row_errors.append(f"{name}: {error}")
                continue
            result.marks.setdefault(case, []).append(mark)
    except (UnicodeDecodeError, csv.Error) as error:
        raise PredictionError(f"{path.name} is not a readable UTF-8 CSV: {error}") from error
    return result
