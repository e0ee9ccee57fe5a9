"""make_demo: a working demo from nothing, and a harmless second run."""

import pytest
from django.core.management import call_command

from annotations.models import Case, Reader, ReferenceLesion, Task
from annotations.services.demo import DEMO_COLLECTION, DEMO_TASK
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
    assert Reader.objects.filter(user__is_active=True).count() == 3
    lesion = ReferenceLesion.objects.first()
    assert lesion.long_axis_mm == 16.0
    assert Instance.objects.filter(sop_instance_uid=lesion.sop_instance_uid).exists()

    call_command("make_demo", "--no-odd-dicom")
    assert Series.objects.filter(study__collection__name=DEMO_COLLECTION).count() == 2
    # The booth task and the simulated study, and the same two for follow-up reads (test_demo_follow_up.py).
    assert Task.objects.count() == 4


def test_the_simulated_study_gives_researchers_consensus_and_stays_off_the_booth(monkeypatch):
    import annotations.management.commands.make_demo as command
    from annotations.models import CaseConsensus
    from annotations.services.demo_study import STUDY_TASK
    from annotations.services.leaderboard import leaderboard

    monkeypatch.setattr(command, "demo_patients", lambda **kwargs: [small_patient("P1", 1), small_patient("P2", 2)])
    call_command("make_demo", "--no-odd-dicom")

    study = Task.objects.get(name=STUDY_TASK)
    assert not study.is_open
    assert all(case.reads_done == 5 for case in study.cases.all())
    current = CaseConsensus.objects.filter(case__task=study, is_current=True)
    assert current.count() == 2
    lesion = current.first().lesions.filter(accepted=True).first()
    assert abs(lesion.long_axis_median_mm - 16.0) < 2.0
    assert leaderboard().readers == 0
