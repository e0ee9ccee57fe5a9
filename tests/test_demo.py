"""make_demo: a working demo from nothing, and a harmless second run."""

import pytest
from django.core.management import call_command

from annotations.models import Case, Reader, ReferenceLesion, Task
from annotations.services.demo import DEMO_TASK
from tests.conftest import small_patient
from viewer.models import Instance, Series

pytestmark = pytest.mark.django_db


def test_make_demo_creates_task_cases_ground_truth_and_logins(monkeypatch):
    # Small patients keep the test fast; the geometry code is the same as for 512x512.
    import annotations.management.commands.make_demo as command

    monkeypatch.setattr(command, "demo_patients", lambda **kwargs: [small_patient("P1", 1), small_patient("P2", 2)])
    call_command("make_demo", "--no-odd-dicom")

    task = Task.objects.get(name=DEMO_TASK)
    assert task.reads_per_case == 3
    assert Case.objects.filter(task=task).count() == 2
    assert Reader.objects.count() == 3
    lesion = ReferenceLesion.objects.first()
    assert lesion.long_axis_mm == 16.0
    assert Instance.objects.filter(sop_instance_uid=lesion.sop_instance_uid).exists()

    call_command("make_demo", "--no-odd-dicom")
    assert Series.objects.count() == 2
    assert Task.objects.count() == 1
