"""A hostile crowd (issue 28): every input that once was a 500, a poisoned export or a free lease is now refused.

Documents go over the wire as a hostile client sends them: JSON text with `\\ud800` escapes and NULs, posted raw.
"""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotations.exports import export_to_path
from annotations.models import Case, FollowUpMeasurement, Lease, Read, Reader
from annotations.questions.services import save_questions
from readerboard.body_limit import BodyLimit
from tests.annotations.follow_up_data import build_follow_up_scene, follow_up_read, measured
from tests.asgi_calls import asgi_request
from tests.factories import (
    CaseFactory,
    LeaseFactory,
    ReaderFactory,
    TaskFactory,
    admin_user,
    bare_cases,
    no_lesion_document,
    read_document,
)

pytestmark = pytest.mark.django_db

NOTE = {"key": "note", "kind": "text", "label": "Note", "max_length": 200}
SURROGATE, NUL, BELL = "\ud800", "\x00", "\x07"
SIGNUP = {"display_name": "Hostile Reader", "pin": "48213", "role": "trainee", "years_experience": 3, "consent": True}


def post_raw(client: APIClient, url: str, document) -> object:
    """POST the document as JSON text (surrogates as \\uXXXX escapes, exactly what a hostile client can send)."""
    return client.post(url, data=json.dumps(document).encode(), content_type="application/json")


def signed_in(reader: Reader) -> APIClient:
    client = APIClient()
    client.force_login(reader.user)
    return client


@pytest.fixture
def case(small_ct_series):
    return CaseFactory(series=small_ct_series, task=TaskFactory(reads_per_case=3), label="Small CT")


@pytest.fixture
def reader_client(case):
    reader = ReaderFactory()
    client = signed_in(reader)
    assert client.post(f"/api/tasks/{case.task_id}/next-case/").status_code == 200
    client.reader = reader
    return client


def errors_of(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    return response.json()["errors"]


# --- Text that cannot be stored or exported ----------------------------------------------------------


def test_a_case_answer_with_a_lone_surrogate_is_refused_by_path_and_the_csv_export_still_works(
    case, reader_client, tmp_path
):
    question_set = save_questions(task=case.task, lesion=[], case=[NOTE])
    document = no_lesion_document(case, question_version=question_set.version, answers={"note": f"ok {SURROGATE}"})

    response = post_raw(reader_client, "/api/reads/", document)

    assert "unpaired surrogate" in errors_of(response)["answers.note"][0]
    assert not Read.objects.exists()
    good = no_lesion_document(case, question_version=question_set.version, answers={"note": "line one\nline two"})
    assert post_raw(reader_client, "/api/reads/", good).status_code == 201
    export_to_path(task=case.task, fmt="csv", out=tmp_path / "reads.csv")
    export_to_path(task=case.task, fmt="bundle", out=tmp_path / "bundle.zip")


@pytest.mark.parametrize("bad", [SURROGATE, NUL, BELL, "\x1b[31m", "\x85"])
def test_a_comment_with_unstorable_or_control_characters_is_a_400_naming_the_comment(case, reader_client, bad):
    response = post_raw(reader_client, "/api/reads/", no_lesion_document(case, comment=f"fine {bad} text"))

    assert "comment" in errors_of(response)
    assert not Read.objects.exists()


def test_a_comment_keeps_line_breaks_and_tabs(case, reader_client):
    response = post_raw(reader_client, "/api/reads/", no_lesion_document(case, comment="first\n\tsecond\r\nthird"))

    assert response.status_code == 201, response.json()
    assert Read.objects.get().comment == "first\n\tsecond\r\nthird"


def test_an_unknown_field_named_with_a_surrogate_is_a_400_whose_answer_is_valid_json(case, reader_client):
    response = post_raw(reader_client, "/api/reads/", {**no_lesion_document(case), f"x{SURROGATE}": 1})

    errors = errors_of(response)
    assert list(errors) == ["x\\ud800"], errors


def test_nul_anywhere_in_the_document_even_in_an_unknown_field_is_refused_at_the_door(case, reader_client):
    response = post_raw(reader_client, "/api/reads/", {**no_lesion_document(case), "extra": {"deep": [f"a{NUL}"]}})

    assert "extra.deep[0]" in errors_of(response)


# --- Numbers, dates and types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"case": 10**300}, "case"),
        ({"duration_s": 10**400}, "duration_s"),
        ({"duration_s": 10**30}, "duration_s"),
        ({"started_at": "2026-02-30T10:00:00Z"}, "started_at"),
        ({"started_at": "2026-11-25T10:31:02+25:00"}, "started_at"),
        ({"started_at": "0001-01-01T00:00:00+01:00"}, "started_at"),
        ({"started_at": "9999-12-31T23:59:59-01:00"}, "started_at"),
        ({"started_at": ["2026-11-25T10:31:02Z"]}, "started_at"),
        ({"started_at": {"at": 1}}, "started_at"),
        ({"comment": ["a"]}, "comment"),
        ({"flags": {"no_lesion": [True]}}, "flags.no_lesion"),
    ],
)
def test_numbers_dates_and_types_that_once_were_500s_are_400s_by_path(case, reader_client, change, path):
    response = post_raw(reader_client, "/api/reads/", {**no_lesion_document(case), **change})

    assert path in errors_of(response)


@pytest.mark.parametrize("number", [40_000, 10**300, 2**63])
def test_a_lesion_number_beyond_the_column_is_a_400(case, reader_client, number):
    document = read_document(case)
    document["lesions"][0]["lesion"] = number

    assert "lesions[0].lesion" in errors_of(post_raw(reader_client, "/api/reads/", document))


def test_a_number_answer_of_hundreds_of_digits_is_a_400(case, reader_client):
    size = {"key": "size", "kind": "number", "label": "Size", "number": {"min": None, "max": None}}
    question_set = save_questions(task=case.task, lesion=[], case=[size])
    document = no_lesion_document(case, question_version=question_set.version, answers={"size": 10**400})

    assert "answers.size" in errors_of(post_raw(reader_client, "/api/reads/", document))


def test_a_document_nested_thousands_deep_is_a_400(reader_client):
    response = reader_client.post("/api/reads/", data=b"[" * 50_000, content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()


# --- Follow-up documents -----------------------------------------------------------------------------


@pytest.fixture
def scene(tmp_path):
    return build_follow_up_scene(tmp_path)


@pytest.fixture
def follow_up_client(scene):
    reader = ReaderFactory()
    client = signed_in(reader)
    assert client.post(f"/api/tasks/{scene.task.pk}/next-case/").status_code == 200
    return client


def follow_up_document(scene, **lesion_changes) -> dict:
    first = {**measured(scene, 1, 1, "B1", -8.0, 6.0, 12.0), **lesion_changes}
    return follow_up_read(
        scene,
        [
            {"index": 1, "lesions": [first, measured(scene, 1, 2, "B2", 14.0, -12.0, 15.0)]},
            {
                "index": 2,
                "lesions": [
                    {"lesion": 3, "baseline_lesion": "B1", "status": "disappeared"},
                    measured(scene, 2, 4, "B2", 14.0, -12.0, 15.0),
                ],
            },
        ],
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": []}, "status"),
        ({"status": {"measured": True}}, "status"),
        ({"baseline_lesion": ["B1"]}, "baseline_lesion"),
        ({"baseline_lesion": {"id": "B1"}}, "baseline_lesion"),
        ({"site": ["liver"]}, "site"),
        ({"site": f"liver{SURROGATE}"}, "site"),
        ({"site": f"liver{NUL}"}, "site"),
        ({"site": "liver\nlung"}, "site"),
        ({"lesion": 40_000}, "lesion"),
    ],
)
def test_follow_up_lesion_fields_of_the_wrong_type_or_unstorable_are_400s(scene, follow_up_client, change, field):
    response = post_raw(follow_up_client, "/api/reads/", follow_up_document(scene, **change))

    assert f"time_points[0].lesions[0].{field}" in errors_of(response)
    assert not FollowUpMeasurement.objects.exists()


def test_a_follow_up_comment_with_a_surrogate_is_a_400(scene, follow_up_client):
    document = {**follow_up_document(scene), "comment": f"bad {SURROGATE}"}

    assert "comment" in errors_of(post_raw(follow_up_client, "/api/reads/", document))


# --- Sign-up, sign-in, console --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"display_name": f"Bad {SURROGATE} name"}, "display_name"),
        ({"display_name": f"Bad {NUL} name"}, "display_name"),
        ({"display_name": "Bad\nname"}, "display_name"),
        ({"subspecialty": f"Body{BELL}"}, "subspecialty"),
        ({"team": f"Team {SURROGATE}"}, "team"),
        ({"role": SURROGATE}, "role"),
        ({"email": f"reader@example{SURROGATE}.org"}, "email"),
        ({"pin": f"1234{SURROGATE}"}, "pin"),
        ({"years_experience": 10**300}, "years_experience"),
        ({"display_name": ["a", "b"]}, "display_name"),
    ],
)
def test_sign_up_refuses_unstorable_fields_by_name(change, field):
    response = post_raw(APIClient(), "/api/signup/", {**SIGNUP, **change})

    assert field in errors_of(response)
    assert not Reader.objects.exists()


def test_sign_in_with_a_surrogate_in_the_name_is_a_400():
    response = post_raw(APIClient(), "/api/login/", {"display_name": f"x{SURROGATE}", "pin": "1234"})

    assert "display_name" in errors_of(response)


def test_the_console_task_form_refuses_a_control_character_in_the_name(client, small_ct_series):
    from tests.annotations.console.test_console_tasks import task_post

    client.force_login(admin_user())
    response = client.post(
        reverse("console:task-create"), task_post(name="Liver\x1b lesions", series=[small_ct_series.id])
    )

    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    assert not Case.objects.exists()


def test_question_labels_with_a_surrogate_are_refused_by_path(client, small_ct_series):
    from tests.annotations.console.test_console_tasks import task_post

    client.force_login(admin_user())
    questions = json.dumps({"case": [{**NOTE, "label": f"Note {SURROGATE}"}]})
    response = client.post(
        reverse("console:task-create"), task_post(questions_json=questions, series=[small_ct_series.id])
    )

    assert response.status_code == 200
    assert "case[0].label" in str(response.context["form"].errors["questions_json"])


@pytest.mark.parametrize("name", [f"Booth{NUL}", f"Booth{SURROGATE}", "Booth\nuploads"])
def test_an_upload_collection_name_that_cannot_be_stored_is_a_400(admin_api, name):
    response = post_raw(admin_api, reverse("console:api-import-create"), {"collection": name})

    assert response.status_code == 400
    assert "collection name" in response.json()["detail"]


# --- Body size ---------------------------------------------------------------------------------------


def test_an_oversized_read_is_a_json_413_before_it_is_read(case, reader_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    document = no_lesion_document(case, comment="x" * 20_000)

    response = post_raw(reader_client, "/api/reads/", document)

    assert response.status_code == 413
    assert "10000 bytes" in response.json()["detail"]
    assert not Read.objects.exists()


def test_an_oversized_console_body_is_a_json_413(admin_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    response = post_raw(admin_api, reverse("console:api-import-create"), {"collection": "x" * 500})

    assert response.status_code == 413
    assert response.json()["detail"]


def test_a_chunked_body_past_the_limit_is_a_413_and_the_app_stops_reading():
    reached = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            reached.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    chunks = [b"x" * 400] * 5

    async def call():
        scope = {"type": "http", "method": "POST", "path": "/api/reads/", "headers": []}
        sent = []
        pending = list(chunks)

        async def receive():
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending)}

        async def send(message):
            sent.append(message)

        await BodyLimit(app, max_bytes=1000)(scope, receive, send)
        return sent

    sent = asyncio.run(call())

    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["detail"]
    assert reached == [400, 400]


def test_a_declared_oversized_body_is_refused_by_the_asgi_application_without_reading_it():
    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app must not see an oversized request")

    status, _, body = asyncio.run(
        asgi_request(
            BodyLimit(app, max_bytes=10),
            "/api/reads/",
            method="POST",
            headers={"content-length": "11", "content-type": "application/json"},
            body=b"x" * 11,
        )
    )

    assert status == 413 and json.loads(body)["detail"]


# --- Leases only from assignment ---------------------------------------------------------------------


def test_renewing_a_lease_on_a_case_next_case_did_not_give_is_a_409_and_makes_no_lease():
    task = TaskFactory(reads_per_case=3)
    (case,) = bare_cases(task, 1)
    client = signed_in(ReaderFactory())

    response = client.post(f"/api/cases/{case.pk}/lease/", {}, format="json")

    assert response.status_code == 409
    assert "not given to you" in response.json()["detail"]
    assert not Lease.objects.exists()


def test_a_gold_case_cannot_be_taken_by_its_id():
    task = TaskFactory(reads_per_case=3)
    (gold,) = bare_cases(task, 1)
    Case.objects.filter(pk=gold.pk).update(is_gold=True)

    response = signed_in(ReaderFactory()).post(f"/api/cases/{gold.pk}/lease/", {}, format="json")

    assert response.status_code == 409
    assert not Lease.objects.exists()


def test_three_free_accounts_cannot_hold_every_case_of_a_three_read_task():
    task = TaskFactory(reads_per_case=3)
    cases = bare_cases(task, 4)
    squatters = [signed_in(ReaderFactory()) for _ in range(3)]

    answers = [squatter.post(f"/api/cases/{c.pk}/lease/", {}, format="json") for squatter in squatters for c in cases]

    assert {answer.status_code for answer in answers} == {409}
    assert signed_in(ReaderFactory()).post(f"/api/tasks/{task.pk}/next-case/").status_code == 200


def test_a_lapsed_lease_is_not_retaken_while_the_reader_holds_another_case_of_the_task():
    task = TaskFactory(reads_per_case=3)
    first, second = bare_cases(task, 2)
    reader = ReaderFactory()
    LeaseFactory(case=first, reader=reader, expires_at=timezone.now() - datetime.timedelta(minutes=1))
    LeaseFactory(case=second, reader=reader)

    response = signed_in(reader).post(f"/api/cases/{first.pk}/lease/", {}, format="json")

    assert response.status_code == 409
    assert Lease.objects.get(case=first).expires_at < timezone.now()


def test_renewing_a_lease_on_a_case_one_already_read_is_a_409(case, reader_client):
    assert post_raw(reader_client, "/api/reads/", no_lesion_document(case)).status_code == 201

    response = reader_client.post(f"/api/cases/{case.pk}/lease/", {}, format="json")

    assert response.status_code == 409
    assert "already been read by you" in response.json()["detail"]
    assert not Lease.objects.exists()


# --- New versions are rate limited -------------------------------------------------------------------


def test_a_burst_of_new_versions_is_a_429_with_retry_after(case, reader_client, settings):
    settings.READERBOARD = {**settings.READERBOARD, "READ_VERSIONS_PER_MINUTE": 3}
    answers = [post_raw(reader_client, "/api/reads/", no_lesion_document(case)) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [201, 201, 201, 429, 429]
    assert 1 <= int(answers[3]["Retry-After"]) <= 60
    assert "per minute" in answers[3].json()["detail"]
    assert Read.objects.count() == 3


def test_versions_past_the_cap_are_a_409(case, reader_client, settings):
    settings.READERBOARD = {**settings.READERBOARD, "MAX_READ_VERSIONS": 2, "READ_VERSIONS_PER_MINUTE": 100}
    answers = [post_raw(reader_client, "/api/reads/", no_lesion_document(case)) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [201, 201, 409]
    assert "at most 2 versions" in answers[2].json()["detail"]


def test_versions_older_than_a_minute_do_not_count_against_the_rate(case, reader_client, settings):
    settings.READERBOARD = {**settings.READERBOARD, "READ_VERSIONS_PER_MINUTE": 1}
    assert post_raw(reader_client, "/api/reads/", no_lesion_document(case)).status_code == 201
    Read.objects.update(submitted_at=timezone.now() - datetime.timedelta(seconds=61))

    assert post_raw(reader_client, "/api/reads/", no_lesion_document(case)).status_code == 201


def test_renewing_a_live_lease_costs_no_more_queries_than_before(django_assert_num_queries):
    # Lock the case, read the reader's state, extend the lease: the lease checks ride on the state query.
    task = TaskFactory(reads_per_case=3)
    (case,) = bare_cases(task, 1)
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader)

    from annotations.assignment import services as assignment

    with django_assert_num_queries(LIVE_RENEWAL_QUERIES):
        assignment.renew_lease(reader=reader, case=case)


LIVE_RENEWAL_QUERIES = 5  # savepoint, lock, reader state, update, release


def test_the_served_application_answers_413_to_a_chunked_read_past_the_limit_on_the_one_hop_path(settings):
    from readerboard.asgi import application

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000

    status, headers, body = asyncio.run(
        asgi_request(
            application,
            "/api/reads/",
            method="POST",
            headers={"content-type": "application/json"},  # no Content-Length: only counting can stop it
            body=b"[" + b"0," * 2_000 + b"0]",
        )
    )

    assert status == 413
    assert dict(headers)["content-type"] == "application/json"
    assert "1000 bytes" in json.loads(body)["detail"]


def test_an_answer_key_with_a_surrogate_in_its_comment_is_a_400(case):
    Case.objects.filter(pk=case.pk).update(is_gold=True)
    admin = APIClient()
    admin.force_login(admin_user())

    response = post_raw(admin, f"/api/cases/{case.pk}/answer-key/", no_lesion_document(case, comment=SURROGATE))

    assert "comment" in errors_of(response)
    assert not Read.all_objects.exists()
