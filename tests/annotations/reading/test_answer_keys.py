"""Answer-key reads: admins only, gold cases only, no lease, newest wins, and never a crowd read."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations.booth.leaderboard import leaderboard
from annotations.consensus.case_consensus import current_reads
from annotations.models import Read
from annotations.questions.presets import preset_question
from annotations.questions.services import save_questions
from annotations.reading.answer_keys import answer_key_read, answer_keys_of_task
from tests.factories import CaseFactory, ReaderFactory, TaskFactory, admin_user, read_document, researcher_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold_case(small_ct_series):
    task = TaskFactory(reads_per_case=2)
    save_questions(task=task, lesion=[preset_question("lesion_site")], case=[])
    return CaseFactory(series=small_ct_series, task=task, is_gold=True)


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def key_document(case, site: str = "liver") -> dict:
    document = read_document(case, question_version=1)
    document["lesions"][0]["answers"] = {"lesion_site": site}
    return document


def test_an_admin_gets_the_gold_case_to_read_with_no_answer_key_yet(gold_case):
    response = client_of(admin_user()).get(f"/api/cases/{gold_case.pk}/answer-key/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] == gold_case.pk
    assert body["lease_expires_at"] is None
    assert body["answer_key"] is None and body["answer_key_saved"] is None
    assert body["task"]["questions"]["lesion"][0]["key"] == "lesion_site"
    assert len(body["instances"]) == gold_case.series.instances.count()


@pytest.mark.parametrize("who", ["reader", "researcher"])
def test_only_admins_may_see_or_make_answer_keys(gold_case, who):
    user = ReaderFactory().user if who == "reader" else researcher_user()
    client = client_of(user)

    assert client.get(f"/api/cases/{gold_case.pk}/answer-key/").status_code == 403
    assert (
        client.post(f"/api/cases/{gold_case.pk}/answer-key/", key_document(gold_case), format="json").status_code == 403
    )
    assert not Read.all_objects.exists()


def test_a_case_that_is_not_gold_takes_no_answer_key(small_ct_series):
    case = CaseFactory(series=small_ct_series, is_gold=False)
    client = client_of(admin_user())

    assert client.get(f"/api/cases/{case.pk}/answer-key/").status_code == 404
    assert client.post(f"/api/cases/{case.pk}/answer-key/", read_document(case), format="json").status_code == 404
    assert not Read.all_objects.exists()


def test_an_answer_key_is_stored_without_a_lease_and_never_counts_as_a_crowd_read(gold_case):
    admin = admin_user()

    response = client_of(admin).post(f"/api/cases/{gold_case.pk}/answer-key/", key_document(gold_case), format="json")

    assert response.status_code == 201, response.json()
    key = Read.all_objects.get()
    assert key.is_answer_key and key.reader is None and key.answered_by == admin
    assert key.answers == {"case": {}, "lesions": {"1": {"lesion_site": "liver"}}}
    assert key.marks.count() == 2
    gold_case.refresh_from_db()
    assert gold_case.reads_done == 0
    assert not Read.objects.exists()
    assert current_reads([gold_case.pk]) == {}
    assert leaderboard().total_reads == 0


def test_a_newer_answer_key_supersedes_the_older_one(gold_case):
    client = client_of(admin_user())
    client.post(f"/api/cases/{gold_case.pk}/answer-key/", key_document(gold_case, "lung"), format="json")

    client.post(f"/api/cases/{gold_case.pk}/answer-key/", key_document(gold_case, "liver"), format="json")

    key = answer_key_read(case=gold_case)
    assert key.version == 2 and key.supersedes is not None
    assert key.answers["lesions"]["1"] == {"lesion_site": "liver"}
    assert answer_keys_of_task(task_id=gold_case.task_id)[gold_case.pk].pk == key.pk
    body = client.get(f"/api/cases/{gold_case.pk}/answer-key/").json()
    assert body["answer_key"]["lesions"][0]["answers"] == {"lesion_site": "liver"}
    assert body["answer_key_saved"]["version"] == 2


def test_a_retried_answer_key_is_stored_once(gold_case):
    client = client_of(admin_user())
    document = key_document(gold_case)

    first = client.post(f"/api/cases/{gold_case.pk}/answer-key/", document, format="json")
    again = client.post(f"/api/cases/{gold_case.pk}/answer-key/", document, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert Read.all_objects.count() == 1


def test_an_answer_key_with_a_wrong_answer_is_refused_and_nothing_is_stored(gold_case):
    response = client_of(admin_user()).post(
        f"/api/cases/{gold_case.pk}/answer-key/", key_document(gold_case, "lungg"), format="json"
    )

    assert response.status_code == 400
    assert "lesions[0].answers.lesion_site" in response.json()["errors"]
    assert not Read.all_objects.exists()
