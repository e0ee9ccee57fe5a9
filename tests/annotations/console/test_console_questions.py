"""The task builder's questions: presets one click away, checked definitions, new versions once reads exist."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.models import CaseConsensus, QuestionSet, Task
from annotations.questions.presets import preset_question
from annotations.questions.services import current_question_set, save_questions
from tests.annotations.console.test_console_tasks import task_post
from tests.factories import ReaderFactory, ReadFactory, SeriesFactory, admin_user

pytestmark = pytest.mark.django_db

CONFIDENCE = {
    "key": "confidence",
    "kind": "likert",
    "label": "Confidence",
    "required": True,
    "scale": {"min": 1, "max": 5, "min_label": "Guess", "max_label": "Certain"},
}


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


def questions_json(lesion=(), case=()) -> str:
    return json.dumps({"lesion": list(lesion), "case": list(case)})


def test_the_task_form_offers_the_presets_and_the_kinds(admin_client):
    page = admin_client.get(reverse("console:task-create")).content.decode()

    assert 'id="question-builder"' in page and 'data-preset="lesion_site"' in page
    assert '"lesion_type": {"key": "lesion_type"' in page  # the presets, coded, for the builder
    assert "multiple_choice" in page


def test_an_admin_creates_a_task_with_lesion_and_case_questions(admin_client, small_ct_series):
    response = admin_client.post(
        reverse("console:task-create"),
        task_post(
            series=[small_ct_series.id], questions_json=questions_json([preset_question("lesion_type")], [CONFIDENCE])
        ),
    )

    assert response.status_code == 302
    question_set = current_question_set(Task.objects.get(name="Liver lesions 2026"))
    assert question_set.version == 1
    assert [q["key"] for q in question_set.lesion_questions] == ["lesion_type"]
    assert question_set.case_questions[0]["scale"]["max_label"] == "Certain"


def test_broken_questions_are_shown_by_path_and_nothing_is_saved(admin_client, small_ct_series):
    bad = {"key": "size", "kind": "number", "label": "Size", "number": {"min": 5, "max": 1}}

    response = admin_client.post(
        reverse("console:task-create"), task_post(series=[small_ct_series.id], questions_json=questions_json([bad]))
    )

    assert response.status_code == 200
    assert "lesion[0].number: min 5 is above max 1" in response.content.decode()
    assert not Task.objects.exists() and not QuestionSet.objects.exists()


def test_editing_the_questions_of_a_task_with_reads_makes_a_new_version(admin_client, small_ct_series):
    admin_client.post(
        reverse("console:task-create"),
        task_post(series=[small_ct_series.id], questions_json=questions_json([preset_question("lesion_type")])),
    )
    task = Task.objects.get()
    first = current_question_set(task)
    ReadFactory(case=task.cases.get(), reader=ReaderFactory(), question_set=first)
    edit_page = admin_client.get(reverse("console:task-edit", args=[task.id])).content.decode()
    assert "makes version 2" in edit_page

    response = admin_client.post(
        reverse("console:task-edit", args=[task.id]),
        task_post(series=[small_ct_series.id], questions_json=questions_json([preset_question("lesion_site")])),
        follow=True,
    )

    assert "questions are now version 2" in response.content.decode()
    assert current_question_set(task).version == 2
    assert QuestionSet.objects.get(pk=first.pk).lesion_questions[0]["key"] == "lesion_type"


def test_saving_a_task_with_no_question_changes_keeps_the_version(admin_client, small_ct_series):
    admin_client.post(reverse("console:task-create"), task_post(series=[small_ct_series.id]))
    task = Task.objects.get()
    save_questions(task=task, lesion=[], case=[CONFIDENCE])
    ReadFactory(case=task.cases.get(), reader=ReaderFactory(), question_set=current_question_set(task))
    form_value = (
        admin_client.get(reverse("console:task-edit", args=[task.id])).context["form"]["questions_json"].value()
    )

    admin_client.post(
        reverse("console:task-edit", args=[task.id]), task_post(series=[small_ct_series.id], questions_json=form_value)
    )

    assert QuestionSet.objects.filter(task=task).count() == 1


def test_changing_the_questions_of_a_task_with_reads_recomputes_its_consensus(
    admin_client, small_ct_series, django_capture_on_commit_callbacks
):
    admin_client.post(reverse("console:task-create"), task_post(series=[small_ct_series.id]))
    task = Task.objects.get()
    ReadFactory(case=task.cases.get(), reader=ReaderFactory(), no_lesion=True)

    # Celery runs eagerly in tests, so the queued recompute runs when the edit commits.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("console:task-edit", args=[task.id]),
            task_post(series=[small_ct_series.id], questions_json=questions_json([preset_question("lesion_site")])),
        )

    current = CaseConsensus.objects.get(case__task=task, is_current=True)
    assert current.answers["version"] == 1 and current.answers["lesions"] == {}


def test_a_gold_case_with_only_an_answer_key_is_kept_when_unticked(admin_client, small_ct_series):
    from tests.annotations.consensus_builders import add_read

    admin_client.post(
        reverse("console:task-create"), task_post(series=[small_ct_series.id], gold_series=[small_ct_series.id])
    )
    task = Task.objects.get()
    add_read(task.cases.get(), None)  # an answer key
    other = SeriesFactory()

    response = admin_client.post(
        reverse("console:task-edit", args=[task.id]), task_post(series=[other.id]), follow=True
    )

    assert response.status_code == 200
    assert "kept 1 case(s) that already have reads" in response.content.decode()
    assert set(task.cases.values_list("series_id", flat=True)) == {small_ct_series.id, other.id}
