"""make_demo: a working demo from nothing, and a harmless second run."""

import pytest
from django.core.management import call_command

from annotations.demo.ct_demo import DEMO_COLLECTION, DEMO_TASK
from annotations.models import Case, Reader, ReferenceLesion, Task
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

    from annotations.selectors import open_tasks

    assert open_tasks().first().name == DEMO_TASK  # the booth task stays first, above the follow-up demo
    call_command("make_demo", "--no-odd-dicom")
    assert Series.objects.filter(study__collection__name=DEMO_COLLECTION).count() == 2
    # The booth task and the simulated study, the same two for follow-up reads (test_demo_follow_up.py), and
    # the ATLAS-like MR task from NIfTI and its "check the model" sibling (test_demo_nifti.py).
    assert Task.objects.count() == 6


def test_the_simulated_study_gives_researchers_consensus_and_stays_off_the_booth(monkeypatch):
    import annotations.management.commands.make_demo as command
    from annotations.booth.leaderboard import leaderboard
    from annotations.demo.reader_study import STUDY_TASK
    from annotations.models import CaseConsensus

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


def test_the_demo_asks_lesion_type_and_site_with_an_answer_key_and_imperfect_simulated_answers(monkeypatch):
    import annotations.management.commands.make_demo as command
    from annotations.consensus.answer_selectors import answer_accuracy, answer_distribution
    from annotations.demo.common import TISSUE_ANSWERS
    from annotations.demo.reader_study import STUDY_TASK
    from annotations.models import CaseConsensus, Read
    from annotations.questions.services import task_questions_payload
    from annotations.reading.answer_keys import answer_key_read
    from tests.conftest import SMALL_LESION
    from viewer.services.synthetic_ct import tissue_at

    monkeypatch.setattr(command, "demo_patients", lambda **kwargs: [small_patient("P1", 1), small_patient("P2", 2)])
    call_command("make_demo", "--no-odd-dicom")

    booth = Task.objects.get(name=DEMO_TASK)
    study = Task.objects.get(name=STUDY_TASK)
    truth = TISSUE_ANSWERS[tissue_at(small_patient(), SMALL_LESION.center_mm)]
    assert truth == {"lesion_type": "bone", "lesion_site": "bone"}
    for task in (booth, study):
        keys = [q["key"] for q in task_questions_payload(task)["lesion"]]
        assert keys == ["lesion_type", "lesion_site"]
        gold = task.cases.get(is_gold=True)
        # The key answers what the image shows where the lesion sits (in the tiny test phantom: the spine).
        key = answer_key_read(case=gold)
        assert key.answers["lesions"]["1"] == truth
    assert ReferenceLesion.objects.first().answers == truth
    assert Read.objects.filter(case__task=booth).count() == 0  # the answer key is no crowd read
    current = CaseConsensus.objects.filter(case__task=study, is_current=True)
    assert all(row.answers["lesions"]["1"]["lesion_site"]["n"] >= 4 for row in current)
    accuracy = answer_accuracy(task=study)
    assert accuracy["gold_cases"] == 1 and len(accuracy["readers"]) == 5
    assert {row["key"] for row in answer_distribution(task=study)} == {"lesion_type", "lesion_site"}
