"""A finished, simulated reader study for the demo, so researchers see consensus and agreement at once.

Simulated readers measure the demo's known lesions with realistic noise (end-point
jitter, an occasional neighbouring slice, an occasional missed lesion), paint
masks whose border wobbles by a pixel, and answer lesion type and site with the
mistakes readers make (a neighbouring site or type, more often the noisier the
reader); the gold case gets an answer key from the synthetic truth. Reads go
through the same assignment and submission services as a person's, so consensus
runs exactly as in production.
The task is closed afterwards, so booth readers never get its cases.
This module must never touch the booth's own demo task.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from annotations.assignment.services import next_case
from annotations.booth.readers import register_reader
from annotations.consensus.case_consensus import recompute_task_consensus
from annotations.core import mask_rle
from annotations.demo.common import demo_lesion_questions
from annotations.models import Case, Reader, ReferenceLesion, Task
from annotations.questions.services import current_question_set, save_questions
from annotations.reading.submission import submit_answer_key, submit_read
from viewer.models import Instance, Series

STUDY_TASK = "Demo: completed reader study (simulated)"
SIMULATED_READERS = [
    ("Sim Reader A", "attending", 15, 0.8),
    ("Sim Reader B", "attending", 8, 1.0),
    ("Sim Reader C", "trainee", 3, 1.6),
    ("Sim Reader D", "trainee", 1, 2.2),
    ("Sim Reader E", "student", 0, 3.5),
]


# The answers a reader confuses with the right one: anatomical neighbours, as on a real CT.
NEIGHBOURING_ANSWERS = {
    "lesion_site": {
        "liver": ("gallbladder", "kidney", "adrenal_gland"),
        "lung": ("pleura", "mediastinum"),
        "soft_tissue": ("lymph_node", "retroperitoneum"),
        "bone": ("soft_tissue",),
    },
    "lesion_type": {
        "liver": ("abdomen", "kidney"),
        "lung": ("mediastinum",),
        "soft_tissue": ("abdomen", "pelvis"),
        "bone": ("soft_tissue",),
    },
}


def confusion_rate(noise_mm: float) -> float:
    """Return how often a simulated reader picks a neighbouring answer: 8 % for the best, 20 % for the worst."""
    return min(0.2, 0.04 + 0.045 * noise_mm)


@dataclass(frozen=True)
class SimulatedReader:
    reader: Reader
    endpoint_noise_mm: float


def simulate_reader_study(*, series: list[Series], seed: int = 7, answer_key_by=None) -> Task:
    """Create (once) a closed task over the series with five simulated readers' reads; return it.

    The task asks lesion type and site; its gold case's answer key is stored as made by `answer_key_by`.
    """
    existing = Task.objects.filter(name=STUDY_TASK).first()
    if existing is not None:
        return existing
    rng = random.Random(seed)
    with transaction.atomic():
        task = Task.objects.create(
            name=STUDY_TASK,
            instructions_md="Simulated readers measured the demo lesions; see the results page.",
            reads_per_case=len(SIMULATED_READERS),
        )
        for index, one_series in enumerate(series):
            Case.objects.create(task=task, series=one_series, label=f"Study case {index + 1}", is_gold=index == 0)

        save_questions(task=task, lesion=demo_lesion_questions(), case=[])
    store_answer_keys(task=task, user=answer_key_by)
    readers = [simulated_reader(name, role, years, noise) for name, role, years, noise in SIMULATED_READERS]
    for simulated in readers:
        while (case := next_case(reader=simulated.reader, task=task, rng=rng)) is not None:
            submit_read(reader=simulated.reader, document=_read_document(case, simulated, rng))
    Task.objects.filter(pk=task.pk).update(is_open=False)
    task.refresh_from_db()
    # Computed here, not left to the queue, so the demo has results even before a worker runs;
    # the per-read Celery tasks find the same inputs and keep these rows.
    recompute_task_consensus(task=task)
    return task


def store_answer_keys(*, task: Task, user=None) -> None:
    """Store an answer key for every gold case of the task from its reference lesions and their known answers."""
    version = current_question_set(task)
    for case in task.cases.filter(is_gold=True).select_related("series"):
        references = list(ReferenceLesion.objects.filter(series=case.series).order_by("id"))
        if not references:
            continue
        instances = list(Instance.objects.filter(series=case.series))
        by_uid = {instance.sop_instance_uid: instance for instance in instances}
        exact = random.Random(0)  # no noise: the reference's own axes
        lesions = []
        for reference in references:
            lesion = _lesion(len(lesions) + 1, by_uid[reference.sop_instance_uid], reference, 0.0, exact)
            if version is not None:
                # A reference made without questions (a custom demo series) answers what it knows.
                known = reference.answers or {}
                lesion["answers"] = {q["key"]: known[q["key"]] for q in version.lesion_questions if q["key"] in known}
            lesions.append(lesion)
        document = {
            "client_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"readerboard-demo-answer-key-{case.pk}")),
            "case": case.pk,
            "started_at": "2026-11-25T08:00:00Z",
            "duration_s": 60.0,
            "flags": {"no_lesion": False, "skip": False, "quality_problem": False},
            "comment": "Answer key from the synthetic ground truth.",
            "lesions": lesions,
        }
        if version is not None:
            document["question_version"] = version.version
        submit_answer_key(user=user, case=case, document=document)


def simulated_reader(name: str, role: str, years: int, noise_mm: float) -> SimulatedReader:
    reader = Reader.objects.filter(display_name=name).first()
    if reader is None:
        # A random PIN nobody knows: simulated readers never sign in.
        pin = f"{random.SystemRandom().randrange(10**7, 10**8)}"
        reader = register_reader(display_name=name, pin=pin, role=role, years_experience=years)
        # Inactive: cannot sign in and stays off the booth's leaderboard.
        reader.user.is_active = False
        reader.user.save(update_fields=["is_active"])
    return SimulatedReader(reader, noise_mm)


def _read_document(case: Case, simulated: SimulatedReader, rng: random.Random) -> dict:
    question_set = current_question_set(case.task)
    instances = list(Instance.objects.filter(series=case.series).order_by("sort_position_mm", "instance_number"))
    by_uid = {instance.sop_instance_uid: index for index, instance in enumerate(instances)}
    lesions = []
    for reference in ReferenceLesion.objects.filter(series=case.series).order_by("id"):
        if rng.random() < 0.06 * simulated.endpoint_noise_mm:  # noisier readers miss more
            continue
        slice_index = by_uid[reference.sop_instance_uid]
        if rng.random() < 0.15:
            slice_index = min(max(slice_index + rng.choice((-1, 1)), 0), len(instances) - 1)
        instance = instances[slice_index]
        lesion = _lesion(len(lesions) + 1, instance, reference, simulated.endpoint_noise_mm, rng)
        if question_set is not None:
            lesion["answers"] = {
                question["key"]: _answer(question["key"], reference.answers, simulated.endpoint_noise_mm, rng)
                for question in question_set.lesion_questions
            }
        lesions.append(lesion)
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-11-25T09:00:00Z",
        "duration_s": round(rng.uniform(25, 110), 1),
        "flags": {"no_lesion": not lesions, "skip": False, "quality_problem": False},
        "comment": "",
        "lesions": lesions,
    }
    if question_set is not None:
        document["question_version"] = question_set.version
    return document


def _answer(key: str, truth: dict, noise_mm: float, rng: random.Random) -> str:
    """Return a simulated reader's answer: usually the truth, sometimes one of its anatomical neighbours."""
    right = truth[key]
    neighbours = NEIGHBOURING_ANSWERS.get(key, {}).get(right, ())
    if neighbours and rng.random() < confusion_rate(noise_mm):
        return rng.choice(neighbours)
    return right


def _lesion(number: int, instance: Instance, reference: ReferenceLesion, noise_mm: float, rng: random.Random) -> dict:
    row_spacing, column_spacing = instance.pixel_spacing_mm
    x0, y0 = instance.image_position_patient[0], instance.image_position_patient[1]
    cx, cy = reference.center_patient_mm[0], reference.center_patient_mm[1]
    dx_mm, dy_mm = reference.diameters_mm[0], reference.diameters_mm[1]

    def point(x_mm: float, y_mm: float) -> list[float]:
        column = (x_mm + rng.gauss(0, noise_mm) - x0) / column_spacing
        row = (y_mm + rng.gauss(0, noise_mm) - y0) / row_spacing
        return [
            round(min(max(column, 0.0), instance.columns - 1.0), 2),
            round(min(max(row, 0.0), instance.rows - 1.0), 2),
        ]

    # The long axis lies along the lesion's larger in-plane diameter, the short axis across it.
    if dx_mm >= dy_mm:
        long_ends = (point(cx - dx_mm / 2, cy), point(cx + dx_mm / 2, cy))
        short_ends = (point(cx, cy - dy_mm / 2), point(cx, cy + dy_mm / 2))
    else:
        long_ends = (point(cx, cy - dy_mm / 2), point(cx, cy + dy_mm / 2))
        short_ends = (point(cx - dx_mm / 2, cy), point(cx + dx_mm / 2, cy))
    long_axis, short_axis = _line(instance, *long_ends), _line(instance, *short_ends)
    if short_axis["length_mm"] > long_axis["length_mm"]:
        # Noise can make a nearly round lesion's axes trade places; a reader would name them the other way.
        long_axis, short_axis = short_axis, long_axis
    return {
        "lesion": number,
        "long_axis": long_axis,
        "short_axis": short_axis,
        "mask": {"slices": [_mask_slice(instance, (cx, cy), (dx_mm, dy_mm), (x0, y0), noise_mm, rng)]},
    }


def _line(instance: Instance, start: list[float], end: list[float]) -> dict:
    row_spacing, column_spacing = instance.pixel_spacing_mm
    length_mm = math.hypot((end[0] - start[0]) * column_spacing, (end[1] - start[1]) * row_spacing)
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": 1,
        "start": start,
        "end": end,
        "length_mm": round(length_mm, 3),
    }


def _mask_slice(instance, center_mm, diameters_mm, origin_mm, noise_mm: float, rng: random.Random) -> dict:
    row_spacing, column_spacing = instance.pixel_spacing_mm
    rows = np.arange(instance.rows)[:, None] * row_spacing + origin_mm[1]
    columns = np.arange(instance.columns)[None, :] * column_spacing + origin_mm[0]
    # Each reader paints the outline a little larger or smaller than the truth.
    scale = 1.0 + rng.gauss(0, 0.04 * noise_mm)
    semi_x = diameters_mm[0] / 2 * scale
    semi_y = diameters_mm[1] / 2 * scale
    mask = ((columns - center_mm[0]) / semi_x) ** 2 + ((rows - center_mm[1]) / semi_y) ** 2 <= 1.0
    return {"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "counts": mask_rle.encode(mask)}
