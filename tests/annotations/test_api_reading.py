"""The reading API as the page uses it: sign up, take a case, renew, submit, see counts; and blindness."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from annotations.models import Case, Lease, Read
from tests.factories import CaseFactory, ReaderFactory, TaskFactory, no_lesion_document, read_document

pytestmark = pytest.mark.django_db

SIGNUP = {
    "display_name": "Dr Grace Hopper",
    "pin": "4321",
    "email": "",
    "role": "attending",
    "subspecialty": "Thoracic",
    "years_experience": 14,
    "consent": True,
}


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def case(small_ct_series):
    return CaseFactory(series=small_ct_series, task=TaskFactory(reads_per_case=2), label="Small CT")


def signed_in(reader) -> APIClient:
    client = APIClient()
    client.force_login(reader.user)
    return client


def test_signup_creates_a_reader_and_a_session_that_can_read(api, case):
    response = api.post("/api/signup/", SIGNUP, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["reader"]["display_name"] == "Dr Grace Hopper"
    assert response.json()["reader"]["reads_count"] == 0
    assert api.get("/api/me/").json()["role"] == "attending"


def test_signup_answers_field_errors(api):
    response = api.post("/api/signup/", {**SIGNUP, "pin": "12", "consent": False}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"pin", "consent"}


def test_signup_with_a_taken_name_names_the_field(api):
    ReaderFactory(display_name="Dr Grace Hopper")

    response = api.post("/api/signup/", {**SIGNUP, "display_name": "dr grace  HOPPER"}, format="json")

    assert response.status_code == 400
    assert "display_name" in response.json()["errors"]


def test_login_with_name_and_pin_then_logout(api):
    api.post("/api/signup/", SIGNUP, format="json")
    api.post("/api/logout/")
    assert api.get("/api/me/").status_code == 401

    response = api.post("/api/login/", {"display_name": " dr grace hopper ", "pin": "4321"}, format="json")

    assert response.status_code == 200
    assert api.get("/api/me/").json()["display_name"] == "Dr Grace Hopper"


def test_wrong_pin_and_unknown_name_get_the_same_answer(api):
    api.post("/api/signup/", SIGNUP, format="json")
    api.post("/api/logout/")

    wrong_pin = api.post("/api/login/", {"display_name": "Dr Grace Hopper", "pin": "0000"}, format="json")
    unknown = api.post("/api/login/", {"display_name": "Nobody Here", "pin": "4321"}, format="json")

    assert wrong_pin.status_code == unknown.status_code == 400
    assert wrong_pin.json() == unknown.json()


def test_reading_endpoints_answer_401_without_a_session(api, case):
    assert api.get("/api/me/").status_code == 401
    assert api.post(f"/api/tasks/{case.task_id}/next-case/").status_code == 401
    assert api.post("/api/reads/", {}, format="json").status_code == 401


def test_a_user_without_reader_profile_cannot_take_cases(case):
    from tests.factories import admin_user

    client = APIClient()
    client.force_login(admin_user())

    assert client.post(f"/api/tasks/{case.task_id}/next-case/").status_code == 403


def test_tasks_list_open_tasks_with_my_progress(case):
    reader = ReaderFactory()
    TaskFactory(name="Closed one", is_open=False)

    tasks = signed_in(reader).get("/api/tasks/").json()

    assert [task["name"] for task in tasks] == [case.task.name]
    assert tasks[0]["my_reads"] == 0
    assert tasks[0]["cases_remaining_for_me"] == 1
    assert tasks[0]["instructions_html"].startswith("<p>")


def test_next_case_gives_the_images_in_reading_order_and_a_lease(case):
    reader = ReaderFactory()

    response = signed_in(reader).post(f"/api/tasks/{case.task_id}/next-case/")

    body = response.json()
    assert response.status_code == 200
    assert body["id"] == case.pk
    assert body["series_instance_uid"] == case.series.series_instance_uid
    assert body["wadors_root"] == "/dicomweb"
    assert len(body["instances"]) == 9
    assert body["instances"][0]["pixel_spacing_mm"] == [1.0, 1.0]
    assert [preset["name"] for preset in body["window_presets"]][:2] == ["Soft tissue", "Lung"]
    assert body["lease_expires_at"]
    assert Lease.objects.filter(case=case, reader=reader).exists()


def test_next_case_answers_204_when_nothing_is_left(case):
    reader = ReaderFactory()
    client = signed_in(reader)
    client.post(f"/api/tasks/{case.task_id}/next-case/")
    client.post("/api/reads/", no_lesion_document(case), format="json")

    assert client.post(f"/api/tasks/{case.task_id}/next-case/").status_code == 204


def test_upcoming_case_names_the_next_cases_images_and_next_case_honours_it(case, small_ct_series):
    from tests.factories import CaseFactory as Cases
    from viewer.models import Series

    # A second case on a copy of the series' study, so the two cases tie and the preference decides.
    second_series = Series.objects.create(
        study=small_ct_series.study, series_instance_uid=f"2.25.{uuid.uuid4().int}", modality="CT"
    )
    other = Cases(series=second_series, task=case.task)
    reader = ReaderFactory()
    client = signed_in(reader)
    first = client.post(f"/api/tasks/{case.task_id}/next-case/").json()

    upcoming = client.get(f"/api/tasks/{case.task_id}/upcoming-case/")

    assert upcoming.status_code == 200
    expected = other if first["id"] == case.pk else case
    assert upcoming.json()["id"] == expected.pk
    assert upcoming.json()["series_instance_uid"] == expected.series.series_instance_uid
    assert not Lease.objects.filter(case=expected).exists()
    client.post("/api/reads/", no_lesion_document(Case.objects.get(pk=first["id"])), format="json")
    given = client.post(f"/api/tasks/{case.task_id}/next-case/", {"prefer_case": expected.pk}, format="json")
    assert given.json()["id"] == expected.pk


def test_next_case_refuses_a_malformed_preference(case):
    answer = signed_in(ReaderFactory()).post(
        f"/api/tasks/{case.task_id}/next-case/", {"prefer_case": "soon"}, format="json"
    )

    assert answer.status_code == 400
    assert "prefer_case" in answer.json()["errors"]


def test_next_case_of_a_closed_task_is_404(case):
    case.task.is_open = False
    case.task.save()

    assert signed_in(ReaderFactory()).post(f"/api/tasks/{case.task_id}/next-case/").status_code == 404


def test_submit_saves_the_read_and_answers_count_and_rank(case):
    reader = ReaderFactory()
    client = signed_in(reader)
    client.post(f"/api/tasks/{case.task_id}/next-case/")

    response = client.post("/api/reads/", read_document(case), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["read"]["version"] == 1
    assert response.json()["me"]["reads_count"] == 1
    assert response.json()["me"]["rank"] == 1
    assert not Lease.objects.filter(case=case, reader=reader).exists()


def test_a_retried_submit_stores_one_read(case):
    client = signed_in(ReaderFactory())
    client.post(f"/api/tasks/{case.task_id}/next-case/")
    document = read_document(case)

    first = client.post("/api/reads/", document, format="json")
    second = client.post("/api/reads/", document, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["read"] == second.json()["read"]
    assert Read.objects.count() == 1


def test_a_bad_read_answers_400_with_json_paths(case):
    client = signed_in(ReaderFactory())
    client.post(f"/api/tasks/{case.task_id}/next-case/")
    document = read_document(case)
    document["lesions"][0]["long_axis"]["end"] = [700.0, 37.5]

    response = client.post("/api/reads/", document, format="json")

    assert response.status_code == 400
    assert "lesions[0].long_axis.end" in response.json()["errors"]


def test_lease_renew_and_release(case):
    reader = ReaderFactory()
    client = signed_in(reader)
    client.post(f"/api/tasks/{case.task_id}/next-case/")

    renewed = client.post(f"/api/cases/{case.pk}/lease/", {"active": True}, format="json")
    released = client.delete(f"/api/cases/{case.pk}/lease/")

    assert renewed.status_code == 200 and renewed.json()["lease_expires_at"]
    assert released.status_code == 204
    assert not Lease.objects.filter(case=case).exists()


def test_renewing_a_lost_lease_on_a_full_case_is_409(case):
    import datetime

    from django.utils import timezone

    late = ReaderFactory()
    client = signed_in(late)
    client.post(f"/api/tasks/{case.task_id}/next-case/")
    Lease.objects.filter(reader=late).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    for _ in range(2):
        other = ReaderFactory()
        other_client = signed_in(other)
        assert other_client.post(f"/api/tasks/{case.task_id}/next-case/").status_code == 200
        other_client.post("/api/reads/", no_lesion_document(case), format="json")

    assert client.post(f"/api/cases/{case.pk}/lease/").status_code == 409


def test_no_endpoint_gives_a_reader_another_readers_marks(case):
    author = ReaderFactory()
    author_client = signed_in(author)
    author_client.post(f"/api/tasks/{case.task_id}/next-case/")
    document = read_document(case, comment="secret-finding-marker")
    author_client.post("/api/reads/", document, format="json")
    reader = ReaderFactory()
    client = signed_in(reader)

    answers = [
        client.get("/api/me/"),
        client.get("/api/tasks/"),
        client.post(f"/api/tasks/{case.task_id}/next-case/"),
        client.get("/api/leaderboard/"),
    ]

    assert answers[2].status_code == 200
    for answer in answers:
        text = answer.content.decode()
        assert "secret-finding-marker" not in text
        assert '"lesions"' not in text and '"start"' not in text and '"counts"' not in text


def test_leaderboard_is_public_and_ranks_by_reads(case):
    reader = ReaderFactory(display_name="Top Reader", role="attending")
    client = signed_in(reader)
    client.post(f"/api/tasks/{case.task_id}/next-case/")
    client.post("/api/reads/", no_lesion_document(case), format="json")

    board = APIClient().get("/api/leaderboard/").json()

    assert board["entries"] == [
        {
            "rank": 1,
            "display_name": "Top Reader",
            "role": "attending",
            "role_label": "Attending radiologist",
            "reads": 1,
            "team": "",
        }
    ]
    assert board["total_reads"] == 1


def test_openapi_schema_describes_the_reading_api(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()

    for route in ("/api/signup/", "/api/login/", "/api/me/", "/api/tasks/{task_id}/next-case/", "/api/reads/"):
        assert route in schema["paths"], route
    assert "ReadDocument" in schema["components"]["schemas"]
