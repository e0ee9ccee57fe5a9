"""A small follow-up scene: one synthetic patient at three dates, a follow-up case with two baseline lesions."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

from annotations.follow_up.time_points import create_follow_up_case
from annotations.models import BaselineLesion, Case, Task
from tests.factories import TaskFactory, line_json
from viewer.models import Instance, Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series

PATIENT_ID = "RB-FU-TEST"
# 64x64 at 1 mm: pixel (c, r) is at x = c - 31.5, y = r - 31.5; slices at 2.5 mm, the middle one at z = 0.
DATES = [dt.datetime(2026, 1, 5, 10, 15), dt.datetime(2026, 3, 2, 9, 0), dt.datetime(2026, 5, 4, 14, 30)]
# Long axes (x diameters, mm) of the two lesions at each date: A shrinks, B stays.
SIZES_MM = [(20.0, 16.0), (12.0, 15.0), (10.0, 15.0)]


def _patient(sizes: tuple[float, float]) -> SyntheticPatient:
    a, b = sizes
    return SyntheticPatient(
        patient_id=PATIENT_ID,
        patient_name="Follow^Up",
        lesions=[
            SyntheticLesion((-8.0, 6.0, 0.0), (a, a * 0.6, 8.0)),
            SyntheticLesion((14.0, -12.0, 0.0), (b, b * 0.7, 8.0)),
        ],
        rows=64,
        columns=64,
        slices=9,
        pixel_spacing_mm=1.0,
        slice_spacing_mm=2.5,
        seed=3,
    )


@dataclass
class FollowUpScene:
    task: Task
    case: Case
    series: list[Series]  # in time order

    def middle(self, index: int) -> Instance:
        instances = list(self.series[index].instances.order_by("sort_position_mm"))
        return instances[len(instances) // 2]


def import_time_points(out_dir: Path) -> list[Series]:
    """Write and import the patient's three studies; return their series in time order."""
    series = []
    for index, (date, sizes) in enumerate(zip(DATES, SIZES_MM, strict=True)):
        written = write_series(
            _patient(sizes), out_dir / f"tp{index}", uid_seed=f"fu-test-{index}", study_datetime=date
        )
        import_paths(written.files, collection_name="Follow-up test")
        series.append(Series.objects.get(series_instance_uid=written.series_instance_uid))
    return series


def horizontal_line(instance: Instance, *, center_x_mm: float, y_mm: float, length_mm: float) -> dict:
    """A line of the read format across a lesion centred at (x, y), horizontal, of the given length."""
    column = center_x_mm + 31.5
    row = y_mm + 31.5
    return line_json(instance, (column - length_mm / 2, row), (column + length_mm / 2, row))


def build_follow_up_scene(out_dir: Path, **task_fields) -> FollowUpScene:
    series = import_time_points(out_dir)
    task = TaskFactory(kind=Task.Kind.FOLLOW_UP, baseline_source=Task.BaselineSource.ANSWER_KEY, **task_fields)
    # Given out of order on purpose: the case orders them by StudyDate + StudyTime.
    case = create_follow_up_case(task=task, series=[series[2], series[0], series[1]])
    scene = FollowUpScene(task=task, case=case, series=series)
    baseline = scene.middle(0)
    for key, (x, y), size, site in (("B1", (-8.0, 6.0), SIZES_MM[0][0], "liver"), ("B2", (14.0, -12.0), 16.0, "lung")):
        BaselineLesion.objects.create(
            case=case,
            key=key,
            label=f"Lesion {key[1:]}",
            site=site,
            long_axis=horizontal_line(baseline, center_x_mm=x, y_mm=y, length_mm=size),
            center_patient_mm=[x, y, 0.0],
        )
    return scene


def follow_up_read(scene: FollowUpScene, time_points: list[dict], **overrides) -> dict:
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": scene.case.pk,
        "started_at": "2026-11-25T10:31:02.120Z",
        "duration_s": 61.0,
        "flags": {"no_lesion": False, "skip": False, "quality_problem": False},
        "comment": "",
        "time_points": time_points,
    }
    document.update(overrides)
    return document


def measured(scene: FollowUpScene, index: int, number: int, key: str | None, x: float, y: float, size: float) -> dict:
    lesion = {
        "lesion": number,
        "status": "measured",
        "long_axis": horizontal_line(scene.middle(index), center_x_mm=x, y_mm=y, length_mm=size),
    }
    if key is None:
        lesion["new"] = True
    else:
        lesion["baseline_lesion"] = key
    return lesion
