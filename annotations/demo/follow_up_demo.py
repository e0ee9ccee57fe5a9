"""The follow-up demo: synthetic patients at three dates with known lesion changes, a follow-up task, simulated reads.

Each demo patient has a designed course, so every RECIST response has a ground truth: a partial response, stable
disease, progression by growth and progression by a new lesion. The series are small (128 x 128 x 30) so the
demo stays fast. Truth is stored twice, in the fields each side needs: ReferenceLesion rows per series (what is
in the images, new lesions included) and BaselineLesion rows per case (the lesions to follow, with their known
size at each follow-up in `follow_up_truth`). Simulated follow-up reads go through the same submission service
as a person's. This module must never change the single-time-point demo task.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from annotations.assignment.services import next_case
from annotations.consensus.longitudinal_consensus import recompute_follow_up_task
from annotations.core import recist
from annotations.demo.reader_study import SIMULATED_READERS, simulated_reader
from annotations.follow_up.time_points import create_follow_up_case, time_points_of
from annotations.models import BaselineLesion, Case, ReferenceLesion, Task
from annotations.reading.submission import submit_read
from viewer.models import Instance, Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series

FOLLOW_UP_COLLECTION = "Demo follow-up CT"
FOLLOW_UP_TASK = "Demo: follow-up reads (RECIST 1.1)"
FOLLOW_UP_STUDY_TASK = "Demo: follow-up reader study (simulated)"
FOLLOW_UP_INSTRUCTIONS = """\
Follow this patient's **target lesions** over time (RECIST 1.1):

1. The baseline study (left) shows the lesions to follow; pick one to move both viewports to it.
2. Measure its **long axis** again on the follow-up study, or mark it *disappeared* or *not evaluable*.
3. Add any **new lesion** you find on the follow-up.
4. Submit: the response (CR, PR, SD, PD) is computed from your measurements.
"""
DATES = (dt.datetime(2026, 1, 5, 10, 15), dt.datetime(2026, 3, 2, 9, 40), dt.datetime(2026, 4, 27, 11, 5))
ROWS = COLUMNS = 128
SLICES = 30
PIXEL_SPACING_MM = 2.0
SLICE_SPACING_MM = 2.5
# 128 x 2 mm phantom: liver centred near (-37, 20) mm (below z = 0), right lung near (48, -4) mm.
LESION_Z_MM = -11.25  # on slice 10 of 30, inside the liver
LIVER_XY = (-37.0, 25.0)
LUNG_XY = (48.0, -10.0)
NEW_LESION_XY = (-18.0, 45.0)


@dataclass(frozen=True)
class FollowUpCourse:
    """One demo patient's designed course: long axes (mm) of B1 (liver) and B2 (lung) at each date."""

    patient_id: str
    name: str
    liver_mm: tuple[float, float, float]
    lung_mm: tuple[float, float, float]
    # Long axis (mm) of a new liver lesion per date (0: absent).
    new_mm: tuple[float, float, float]
    expected: tuple[str, str]  # the designed response at follow-up 1 and 2


COURSES = (
    # 50 mm -> 38 (-24 %, SD) -> 30 (-40 %, PR)
    FollowUpCourse("RB-FU-PR", "Follow^Partial", (30.0, 24.0, 18.0), (20.0, 14.0, 12.0), (0, 0, 0), ("SD", "PR")),
    # 43 mm -> 44 -> 46 (+7 %): stable
    FollowUpCourse("RB-FU-SD", "Follow^Stable", (25.0, 26.0, 27.0), (18.0, 18.0, 19.0), (0, 0, 0), ("SD", "SD")),
    # 36 mm -> 32 (nadir) -> 44 (+37.5 % and +12 mm over the nadir): progression by growth
    FollowUpCourse("RB-FU-PDG", "Follow^Growth", (20.0, 18.0, 26.0), (16.0, 14.0, 18.0), (0, 0, 0), ("SD", "PD")),
    # unchanged sum, a new 14 mm liver lesion at follow-up 2: progression by a new lesion
    FollowUpCourse("RB-FU-PDN", "Follow^NewLesion", (22.0, 22.0, 21.0), (16.0, 16.0, 16.0), (0, 0, 14.0), ("SD", "PD")),
)


def _lesion(xy: tuple[float, float], long_mm: float, hu: float) -> SyntheticLesion:
    # Long axis along x, short axis 70 % of it, 12 mm deep so the centre slice is the largest.
    return SyntheticLesion((xy[0], xy[1], LESION_Z_MM), (long_mm, round(long_mm * 0.7, 1), 12.0), hu=hu)


def patient_at(course: FollowUpCourse, index: int) -> SyntheticPatient:
    """Return the synthetic patient as imaged at date `index` (0 = baseline)."""
    lesions = [_lesion(LIVER_XY, course.liver_mm[index], 20.0), _lesion(LUNG_XY, course.lung_mm[index], 35.0)]
    if course.new_mm[index]:
        lesions.append(_lesion(NEW_LESION_XY, course.new_mm[index], 20.0))
    return SyntheticPatient(
        patient_id=course.patient_id,
        patient_name=course.name,
        lesions=lesions,
        rows=ROWS,
        columns=COLUMNS,
        slices=SLICES,
        pixel_spacing_mm=PIXEL_SPACING_MM,
        slice_spacing_mm=SLICE_SPACING_MM,
        seed=sum(map(ord, course.patient_id)) + index,
    )


def truth_measurements(course: FollowUpCourse) -> tuple[list[recist.BaselineLesionSize], list]:
    """Return the course's true baseline sizes and follow-up measurements as RECIST inputs."""
    baseline = [
        recist.BaselineLesionSize("B1", course.liver_mm[0], site="liver"),
        recist.BaselineLesionSize("B2", course.lung_mm[0], site="lung"),
    ]
    follow_ups = [
        recist.TimePointMeasurements(
            index=index,
            lesions={
                "B1": recist.LesionAtTimePoint(recist.Status.MEASURED, course.liver_mm[index]),
                "B2": recist.LesionAtTimePoint(recist.Status.MEASURED, course.lung_mm[index]),
            },
            new_lesions=1 if course.new_mm[index] else 0,
        )
        for index in (1, 2)
    ]
    return baseline, follow_ups


def make_follow_up_demo(*, simulated_study: bool = True) -> Task:
    """Create (once) the follow-up demo: series, an open follow-up task with its answer key, simulated reads."""
    existing = Task.objects.filter(name=FOLLOW_UP_TASK).first()
    if existing is not None:
        return existing
    out_root = settings.DATA_DIR / "demo-source" / "follow-up"
    series_by_course: list[list[Series]] = []
    for course in COURSES:
        series = []
        for index, date in enumerate(DATES):
            patient = patient_at(course, index)
            written = write_series(
                patient,
                out_root / course.patient_id / f"tp{index}",
                study_description="CT CHEST ABDOMEN FOLLOW-UP" if index else "CT CHEST ABDOMEN",
                uid_seed=f"follow-up-demo-{course.patient_id}-{index}",
                study_datetime=date,
            )
            import_paths(written.files, collection_name=FOLLOW_UP_COLLECTION)
            one = Series.objects.get(series_instance_uid=written.series_instance_uid)
            _store_references(one, patient, course, index)
            series.append(one)
        series_by_course.append(series)
    with transaction.atomic():
        task = Task.objects.create(
            name=FOLLOW_UP_TASK,
            instructions_md=FOLLOW_UP_INSTRUCTIONS,
            kind=Task.Kind.FOLLOW_UP,
            baseline_source=Task.BaselineSource.ANSWER_KEY,
            reads_per_case=3,
        )
        for course, series in zip(COURSES, series_by_course, strict=True):
            case = create_follow_up_case(task=task, series=series, label=f"Follow-up {course.name.split('^')[1]}")
            store_answer_key(case, course)
    if simulated_study:
        simulate_follow_up_study(series_by_course=series_by_course)
    return task


def _store_references(series: Series, patient: SyntheticPatient, course: FollowUpCourse, index: int) -> None:
    instances = list(Instance.objects.filter(series=series).order_by("sort_position_mm"))
    labels = ["B1", "B2", "New 1"]
    for label, lesion in zip(labels, patient.lesions, strict=False):
        nearest = min(instances, key=lambda i: abs(i.image_position_patient[2] - lesion.center_mm[2]))
        ReferenceLesion.objects.get_or_create(
            series=series,
            label=label,
            defaults={
                "source": "synthetic",
                "center_patient_mm": list(lesion.center_mm),
                "diameters_mm": list(lesion.diameters_mm),
                "long_axis_mm": lesion.long_axis_mm,
                "short_axis_mm": lesion.short_axis_mm,
                "sop_instance_uid": nearest.sop_instance_uid,
            },
        )


def lesion_centre_instance(series: Series) -> Instance:
    """Return the instance of a demo series through the lesions' centre slice."""
    return min(Instance.objects.filter(series=series), key=lambda i: abs(i.image_position_patient[2] - LESION_Z_MM))


def horizontal_line(instance: Instance, *, center_xy: tuple[float, float], length_mm: float) -> dict:
    """Return a read-format line across (x, y) along the row direction, `length_mm` long, on `instance`."""
    x0, y0 = instance.image_position_patient[0], instance.image_position_patient[1]
    row_spacing, column_spacing = instance.pixel_spacing_mm
    column = (center_xy[0] - x0) / column_spacing
    row = (center_xy[1] - y0) / row_spacing
    half = length_mm / 2 / column_spacing
    start, end = [round(column - half, 2), round(row, 2)], [round(column + half, 2), round(row, 2)]
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": 1,
        "start": start,
        "end": end,
        "length_mm": round(abs(end[0] - start[0]) * column_spacing, 3),
    }


def store_answer_key(case: Case, course: FollowUpCourse) -> None:
    """Store the case's baseline lesions with their true size at every follow-up, and the true new lesions."""
    for index, new_mm in enumerate(course.new_mm):
        case.time_points.filter(index=index).update(new_lesions_truth=1 if new_mm else 0)
    baseline_instance = lesion_centre_instance(case.series)
    for key, label, site, xy, sizes in (
        ("B1", "Lesion 1 (liver)", "liver", LIVER_XY, course.liver_mm),
        ("B2", "Lesion 2 (lung)", "lung", LUNG_XY, course.lung_mm),
    ):
        BaselineLesion.objects.create(
            case=case,
            key=key,
            label=label,
            site=site,
            long_axis=horizontal_line(baseline_instance, center_xy=xy, length_mm=sizes[0]),
            center_patient_mm=[xy[0], xy[1], LESION_Z_MM],
            follow_up_truth={
                str(index): {"status": "measured", "long_axis_mm": sizes[index]} for index in range(1, len(sizes))
            },
        )


# --- Simulated follow-up reads -----------------------------------------------------------------


def simulate_follow_up_study(*, series_by_course: list[list[Series]], seed: int = 11) -> Task:
    """Create (once) a closed follow-up task with five simulated readers' follow-up reads; return it."""
    existing = Task.objects.filter(name=FOLLOW_UP_STUDY_TASK).first()
    if existing is not None:
        return existing
    rng = random.Random(seed)
    with transaction.atomic():
        task = Task.objects.create(
            name=FOLLOW_UP_STUDY_TASK,
            instructions_md="Simulated readers followed the demo patients' lesions; see the results page.",
            kind=Task.Kind.FOLLOW_UP,
            baseline_source=Task.BaselineSource.ANSWER_KEY,
            reads_per_case=len(SIMULATED_READERS),
        )
        for course, series in zip(COURSES, series_by_course, strict=True):
            case = create_follow_up_case(task=task, series=series, label=f"Study {course.name.split('^')[1]}")
            store_answer_key(case, course)
    courses = {course.patient_id: course for course in COURSES}
    for name, role, years, noise in SIMULATED_READERS:
        simulated = simulated_reader(name, role, years, noise)
        while (case := next_case(reader=simulated.reader, task=task, rng=rng)) is not None:
            course = courses[case.series.study.patient_id]
            document = simulated_follow_up_read(case, course, noise_mm=noise, rng=rng)
            submit_read(reader=simulated.reader, document=document)
    Task.objects.filter(pk=task.pk).update(is_open=False)
    task.refresh_from_db()
    # Computed here, not left to the queue, so the demo has results before a worker runs.
    recompute_follow_up_task(task=task)
    return task


def simulated_follow_up_read(case: Case, course: FollowUpCourse, *, noise_mm: float, rng: random.Random) -> dict:
    """Return a follow-up read document measuring the course's lesions with end-point noise of `noise_mm`."""
    time_points = []
    number = 0
    for point in time_points_of(case)[1:]:
        instance = lesion_centre_instance(point.series)
        lesions = []
        for key, xy, sizes in (("B1", LIVER_XY, course.liver_mm), ("B2", LUNG_XY, course.lung_mm)):
            number += 1
            length = max(2.0, sizes[point.index] + rng.gauss(0, noise_mm * math.sqrt(2)))
            lesions.append(
                {
                    "lesion": number,
                    "baseline_lesion": key,
                    "status": "measured",
                    "long_axis": horizontal_line(instance, center_xy=xy, length_mm=length),
                }
            )
        # Noisier readers miss a small new lesion more often.
        if course.new_mm[point.index] and rng.random() > 0.05 * noise_mm:
            number += 1
            length = max(2.0, course.new_mm[point.index] + rng.gauss(0, noise_mm))
            lesions.append(
                {
                    "lesion": number,
                    "new": True,
                    "status": "measured",
                    "site": "liver",
                    "long_axis": horizontal_line(instance, center_xy=NEW_LESION_XY, length_mm=length),
                }
            )
        time_points.append({"index": point.index, "lesions": lesions})
    return {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-11-25T09:30:00Z",
        "duration_s": round(rng.uniform(60, 240), 1),
        "flags": {"no_lesion": False, "skip": False, "quality_problem": False},
        "comment": "",
        "time_points": time_points,
    }
