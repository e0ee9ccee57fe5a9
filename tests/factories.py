"""factory_boy factories for users, readers, tasks, cases and reads."""

from __future__ import annotations

import datetime
import functools
import math
import uuid

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from annotations.booth.names import name_skeleton
from annotations.booth.roles import ADMIN, READER, RESEARCHER, grant_role
from annotations.models import Case, Lease, Read, Reader, Task

FACTORY_PASSWORD = "pw-123456"


@functools.cache
def factory_password_hash() -> str:
    """One real PBKDF2 hash of FACTORY_PASSWORD per test process: hashing it per user cost 0.2 s each."""
    return make_password(FACTORY_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.LazyFunction(factory_password_hash)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or []:
            grant_role(self, role)
        if create:
            self.save()


class ReaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reader

    user = factory.SubFactory(UserFactory, roles=[READER])
    display_name = factory.Sequence(lambda n: f"Reader {n}")
    name_skeleton = factory.LazyAttribute(lambda reader: name_skeleton(reader.display_name))
    role = "trainee"
    years_experience = 3


def admin_user(**kwargs):
    return UserFactory(roles=[ADMIN], **kwargs)


def researcher_user(**kwargs):
    return UserFactory(roles=[RESEARCHER], **kwargs)


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    name = factory.Sequence(lambda n: f"Task {n}")
    instructions_md = "Measure the largest lesion."
    reads_per_case = 3


class CaseFactory(factory.django.DjangoModelFactory):
    """Needs a series: pass series=... (e.g. the small_ct_series fixture)."""

    class Meta:
        model = Case

    task = factory.SubFactory(TaskFactory)
    label = factory.Sequence(lambda n: f"Case {n}")


class ReadFactory(factory.django.DjangoModelFactory):
    """A bare read record; services.reads builds real ones from a read document."""

    class Meta:
        model = Read

    client_uuid = factory.LazyFunction(uuid.uuid4)
    reader = factory.SubFactory(ReaderFactory)
    document = factory.LazyFunction(dict)


# --- Reading side: leases and read documents (docs/read-format.md) ------------------------------


class LeaseFactory(factory.django.DjangoModelFactory):
    """A live lease; pass case=... and reader=..."""

    class Meta:
        model = Lease

    reader = factory.SubFactory(ReaderFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(minutes=5))


def middle_instance(case: Case):
    """The case's middle instance in reading order (the small CT's lesion slice)."""
    instances = list(case.series.instances.order_by("sort_position_mm", "instance_number", "id"))
    return instances[len(instances) // 2]


def line_json(instance, start, end, *, frame: int = 1, length_mm: float | None = None) -> dict:
    """A line of the read format on `instance`, with its length in mm computed from the pixel spacing."""
    row_spacing, column_spacing = instance.pixel_spacing_mm
    if length_mm is None:
        length_mm = math.hypot(column_spacing * (end[0] - start[0]), row_spacing * (end[1] - start[1]))
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": frame,
        "start": list(start),
        "end": list(end),
        "length_mm": round(length_mm, 3),
    }


def square_mask_counts(instance, *, top: int, left: int, size: int) -> list[int]:
    """Run lengths of a size x size square painted at (top, left) on the instance's frame."""
    counts: list[int] = []
    position = 0
    for row in range(top, top + size):
        start = row * instance.columns + left
        counts += [start - position, size]
        position = start + size
    counts.append(instance.rows * instance.columns - position)
    return counts


def read_document(case: Case, **overrides) -> dict:
    """A valid read document for the case: one lesion with long and short axis and a small mask."""
    instance = middle_instance(case)
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-11-25T10:31:02.120Z",
        "duration_s": 48.6,
        "flags": {"no_lesion": False, "skip": False, "quality_problem": False},
        "comment": "",
        "lesions": [
            {
                "lesion": 1,
                "long_axis": line_json(instance, (15.5, 37.5), (31.5, 37.5)),
                "short_axis": line_json(instance, (23.5, 32.5), (23.5, 42.5)),
                "mask": {
                    "slices": [
                        {
                            "sop_instance_uid": instance.sop_instance_uid,
                            "frame": 1,
                            "counts": square_mask_counts(instance, top=34, left=20, size=6),
                        }
                    ]
                },
            }
        ],
    }
    document.update(overrides)
    return document


def no_lesion_document(case: Case, **overrides) -> dict:
    """A valid read document saying the case has no measurable lesion (needs no images)."""
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-11-25T10:31:02.120Z",
        "duration_s": 12.0,
        "flags": {"no_lesion": True, "skip": False, "quality_problem": False},
        "comment": "",
        "lesions": [],
    }
    document.update(overrides)
    return document


class StudyFactory(factory.django.DjangoModelFactory):
    """A study record without files (for tests that need cases but no pixels)."""

    class Meta:
        model = "viewer.Study"

    study_instance_uid = factory.Sequence(lambda n: f"1.2.826.0.1.3680043.10.1427.99.1.{n}")
    patient_id = factory.Sequence(lambda n: f"P{n:04d}")


class SeriesFactory(factory.django.DjangoModelFactory):
    """A series record without instances: enough to make a case for assignment tests."""

    class Meta:
        model = "viewer.Series"

    series_instance_uid = factory.Sequence(lambda n: f"1.2.826.0.1.3680043.10.1427.99.2.{n}")
    study = factory.SubFactory(StudyFactory)
    modality = "CT"


def bare_cases(task: Task, count: int) -> list[Case]:
    """`count` cases of the task, each on its own file-less series."""
    return [CaseFactory(task=task, series=SeriesFactory(), label=f"Bare case {k + 1}") for k in range(count)]
