"""Readers: sign-up and sign-in by name and PIN (API and pages), rate limits, booth sessions, the reading page."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from annotations.booth import readers
from annotations.models import Reader
from tests.factories import CaseFactory, LeaseFactory, ReaderFactory, TaskFactory, admin_user, bare_cases

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate-limit counters live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def make_reader(name: str = "Dr Ada Test", pin: str = "2468", **fields) -> Reader:
    return readers.register_reader(display_name=name, pin=pin, role=fields.pop("role", "attending"), **fields)


# --- Services -------------------------------------------------------------------------------------


def test_register_reader_hashes_the_pin():
    reader = make_reader()

    assert reader.user.password != "2468" and reader.user.check_password("2468")
    assert reader.consented_at is not None and reader.pseudonym.startswith("R-")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"display_name": "A"}, "display_name"),
        ({"pin": "12a4"}, "pin"),
        ({"pin": "123"}, "pin"),
        ({"consented": False}, "consent"),
        ({"role": "wizard"}, "role"),
        ({"years_experience": 90}, "years_experience"),
    ],
)
def test_register_reader_names_the_wrong_field(fields, field):
    arguments = {"display_name": "Dr Ada Test", "pin": "2468", "role": "attending", **fields}

    with pytest.raises(readers.RegistrationError) as caught:
        readers.register_reader(**arguments)

    assert caught.value.field == field


def test_display_names_are_unique_ignoring_case_and_spaces():
    make_reader("Dr Ada Test")

    with pytest.raises(readers.RegistrationError):
        make_reader("  dr   ada TEST ")


def test_authenticate_reader_accepts_the_name_in_any_case():
    reader = make_reader()

    assert readers.authenticate_reader(display_name="DR ADA  test", pin="2468") == reader


def test_a_wrong_pin_is_invalid_credentials():
    make_reader()

    with pytest.raises(readers.InvalidCredentials):
        readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")


def test_a_name_is_locked_after_too_many_wrong_pins_even_with_the_right_one():
    make_reader()
    for _ in range(readers.FAILED_PINS_PER_NAME):
        with pytest.raises(readers.InvalidCredentials):
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")

    with pytest.raises(readers.TooManyAttempts):
        readers.authenticate_reader(display_name="Dr Ada Test", pin="2468")


def test_past_the_free_guesses_each_wrong_pin_doubles_the_wait_and_the_refusal_says_how_long(monkeypatch):
    make_reader()
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # the cache's expiry reads the same clock
    for _ in range(readers.FAILED_PINS_PER_NAME):
        with pytest.raises(readers.InvalidCredentials):
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")
    waits = []
    for _ in range(6):
        with pytest.raises(readers.TooManyAttempts) as caught:
            readers.authenticate_reader(display_name="Dr Ada Test", pin="2468")
        waits.append(caught.value.retry_after_s)
        clock[0] += caught.value.retry_after_s
        with pytest.raises(readers.InvalidCredentials):
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")

    assert waits == [30, 60, 120, 240, 480, readers.FAILED_PINS_WINDOW_S]


def test_a_locked_name_does_not_lock_another_reader():
    make_reader()
    other = make_reader("Ben Other", pin="1357")
    for _ in range(readers.FAILED_PINS_PER_NAME + 2):
        with pytest.raises((readers.InvalidCredentials, readers.TooManyAttempts)):
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")

    assert readers.authenticate_reader(display_name="Ben Other", pin="1357") == other


def test_a_successful_sign_in_clears_the_count_of_wrong_pins():
    reader = make_reader()
    for _ in range(readers.FAILED_PINS_PER_NAME - 1):
        with pytest.raises(readers.InvalidCredentials):
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")
    readers.authenticate_reader(display_name="Dr Ada Test", pin="2468")

    with pytest.raises(readers.InvalidCredentials):
        readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")
    assert readers.authenticate_reader(display_name="Dr Ada Test", pin="2468") == reader


def test_a_deactivated_reader_cannot_sign_in():
    reader = make_reader()
    reader.user.is_active = False
    reader.user.save()

    with pytest.raises(readers.InvalidCredentials):
        readers.authenticate_reader(display_name="Dr Ada Test", pin="2468")


def test_attempts_over_the_rate_are_refused_until_the_window_passes(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "3/min"}}
    start = time.time()
    for second in range(3):
        readers.check_attempt_rate(scope="login", client_key="10.0.0.1", now_s=start + second)

    with pytest.raises(readers.TooManyAttempts) as caught:
        readers.check_attempt_rate(scope="login", client_key="10.0.0.1", now_s=start + 3)
    readers.check_attempt_rate(scope="login", client_key="10.0.0.2", now_s=start + 3)
    readers.check_attempt_rate(scope="login", client_key="10.0.0.1", now_s=start + 61)
    assert 50 <= caught.value.retry_after_s <= 60


def test_booth_sessions_expire_after_the_idle_time():
    assert readers.booth_session_expired(last_seen_s=100.0, now_s=701.0, idle_s=600)
    assert not readers.booth_session_expired(last_seen_s=100.0, now_s=699.0, idle_s=600)
    assert readers.booth_session_expired(last_seen_s=None, now_s=1.0, idle_s=600)


# --- API: rate limits and booth mode --------------------------------------------------------------


def test_login_api_answers_429_when_rate_limited(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "2/min"}}
    make_reader()
    client = APIClient()
    for _ in range(2):
        client.post("/api/login/", {"display_name": "Dr Ada Test", "pin": "0000"}, format="json")

    response = client.post("/api/login/", {"display_name": "Dr Ada Test", "pin": "2468"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_signup_api_answers_429_when_rate_limited(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"signup": "1/min"}}
    client = APIClient()
    body = {"pin": "1234", "role": "student", "years_experience": 0, "consent": True}
    client.post("/api/signup/", {**body, "display_name": "First Person"}, format="json")

    response = client.post("/api/signup/", {**body, "display_name": "Second Person"}, format="json")

    assert response.status_code == 429
    assert not Reader.objects.filter(display_name="Second Person").exists()


def test_a_burst_of_wrong_pins_locks_the_name_with_429_and_retry_after_while_others_sign_in():
    make_reader()
    make_reader("Ben Other", pin="1357")
    client = APIClient()
    # Each attempt from its own address, as a distributed guesser: the per-name limit still holds.
    answers = [
        client.post(
            "/api/login/", {"display_name": "Dr Ada Test", "pin": f"{n:04d}"}, format="json", REMOTE_ADDR=f"10.0.0.{n}"
        ).status_code
        for n in range(1, readers.FAILED_PINS_PER_NAME + 3)
    ]

    right_pin = client.post("/api/login/", {"display_name": "Dr Ada Test", "pin": "2468"}, format="json")
    other = APIClient().post("/api/login/", {"display_name": "Ben Other", "pin": "1357"}, format="json")

    assert answers[: readers.FAILED_PINS_PER_NAME] == [400] * readers.FAILED_PINS_PER_NAME
    assert answers[readers.FAILED_PINS_PER_NAME :] == [429, 429]
    assert right_pin.status_code == 429 and 0 < int(right_pin["Retry-After"]) <= readers.FAILED_PINS_WINDOW_S + 1
    assert other.status_code == 200


def test_login_api_checks_csrf_for_browser_sessions():
    make_reader()
    client = APIClient(enforce_csrf_checks=True)

    response = client.post("/api/login/", {"display_name": "Dr Ada Test", "pin": "2468"}, format="json")

    assert response.status_code == 403


def booth_client(settings, idle_s: int = 600) -> APIClient:
    settings.READERBOARD = {**settings.READERBOARD, "BOOTH_IDLE_SECONDS": idle_s}
    make_reader()
    client = APIClient()
    response = client.post(
        "/api/login/", {"display_name": "Dr Ada Test", "pin": "2468", "booth_mode": True}, format="json"
    )
    assert response.json()["reader"]["booth_mode"] is True
    return client


def age_booth_session(client, seconds: float) -> None:
    session = client.session
    session[readers.BOOTH_SEEN_KEY] = time.time() - seconds
    session.save()


def test_a_booth_session_signs_out_after_inactivity(settings):
    client = booth_client(settings, idle_s=600)
    age_booth_session(client, 601)

    assert client.get("/api/me/").status_code == 401


def test_a_booth_session_stays_while_the_reader_is_active(settings):
    client = booth_client(settings, idle_s=600)
    age_booth_session(client, 500)

    assert client.get("/api/me/").status_code == 200
    assert time.time() - client.session[readers.BOOTH_SEEN_KEY] < 5


def test_the_booth_session_cookie_itself_expires_after_the_idle_time(settings):
    client = booth_client(settings, idle_s=120)

    assert client.session.get_expiry_age() == 120


def test_timer_lease_renewals_do_not_keep_a_booth_session_alive(settings):
    client = booth_client(settings, idle_s=600)
    reader = Reader.objects.get()
    case = bare_cases(TaskFactory(), 1)[0]
    LeaseFactory(case=case, reader=reader)
    age_booth_session(client, 500)

    assert client.post(f"/api/cases/{case.pk}/lease/", {}, format="json").status_code == 200
    age_booth_session_by = time.time() - client.session[readers.BOOTH_SEEN_KEY]
    assert age_booth_session_by >= 499
    assert client.post(f"/api/cases/{case.pk}/lease/", {"active": True}, format="json").status_code == 200
    assert time.time() - client.session[readers.BOOTH_SEEN_KEY] < 5


def test_ordinary_sessions_do_not_time_out(settings):
    make_reader()
    client = APIClient()
    client.post("/api/login/", {"display_name": "Dr Ada Test", "pin": "2468"}, format="json")
    age_booth_session(client, 10 * 3600)

    assert client.get("/api/me/").status_code == 200


def test_a_booth_reader_is_signed_out_on_the_pages_too(settings):
    settings.READERBOARD = {**settings.READERBOARD, "BOOTH_IDLE_SECONDS": 60}
    make_reader()
    client = Client()
    client.post("/login/", {"display_name": "Dr Ada Test", "pin": "2468", "booth_mode": "on"})
    age_booth_session(client, 61)

    page = client.get("/", follow=True)

    assert "signed out after a period of inactivity" in page.content.decode()
    assert not page.wsgi_request.user.is_authenticated


# --- Pages ----------------------------------------------------------------------------------------


SIGNUP_FORM = {
    "display_name": "Dr Page Signup",
    "pin": "97531",
    "role": "trainee",
    "subspecialty": "Neuro",
    "years_experience": "3",
    "email": "",
    "consent": "on",
}


def test_the_signup_page_creates_a_reader_and_goes_to_next():
    task = TaskFactory()
    client = Client()

    response = client.post("/signup/", {**SIGNUP_FORM, "next": f"/read/{task.pk}/"})

    assert response.status_code == 302 and response["Location"] == f"/read/{task.pk}/"
    assert Reader.objects.get(display_name="Dr Page Signup").role == "trainee"


def test_the_signup_page_never_redirects_off_site():
    response = Client().post("/signup/", {**SIGNUP_FORM, "next": "https://evil.example/"})

    assert response["Location"] == "/"


def test_the_signup_page_shows_field_errors():
    response = Client().post("/signup/", {**SIGNUP_FORM, "pin": "12", "consent": ""})

    text = response.content.decode()
    assert response.status_code == 200
    assert "PIN must be 4 to 8 digits." in text and "Consent is required to take part." in text


def test_a_booth_device_defaults_sign_in_to_booth_mode():
    client = Client()
    client.get("/?booth=1")

    on_booth_device = client.get("/login/").context["form"]["booth_mode"].value()
    elsewhere = Client().get("/login/").context["form"]["booth_mode"].value()

    assert (on_booth_device, elsewhere) == (True, False)


def test_the_login_page_signs_in_and_out():
    make_reader()
    client = Client()

    wrong = client.post("/login/", {"display_name": "Dr Ada Test", "pin": "1111"})
    right = client.post("/login/", {"display_name": "Dr Ada Test", "pin": "2468"})
    home = client.get("/").content.decode()
    client.post("/logout/")

    assert wrong.status_code == 400 and "do not match" in wrong.content.decode()
    assert right.status_code == 302
    assert "Hello, Dr Ada Test" in home
    assert not client.get("/").wsgi_request.user.is_authenticated


def test_the_login_page_is_rate_limited(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "1/min"}}
    client = Client()
    client.post("/login/", {"display_name": "x", "pin": "1"})

    assert client.post("/login/", {"display_name": "x", "pin": "1"}).status_code == 429


def test_home_shows_open_tasks_with_my_progress(small_ct_series):
    case = CaseFactory(series=small_ct_series, task=TaskFactory(name="Liver lesions"))
    reader = ReaderFactory()
    client = Client()
    client.force_login(reader.user)

    page = client.get("/").content.decode()

    assert "Liver lesions" in page and f"/read/{case.task_id}/" in page and "1 waiting for you" in page


def test_the_reading_page_needs_a_signed_in_reader():
    task = TaskFactory()

    response = Client().get(f"/read/{task.pk}/")

    assert response.status_code == 302 and response["Location"] == f"/login/?next=/read/{task.pk}/"


def test_the_reading_page_renders_the_viewer_with_the_api_urls():
    task = TaskFactory()
    client = Client()
    client.force_login(ReaderFactory().user)

    response = client.get(f"/read/{task.pk}/")

    assert response.status_code == 200
    assert "viewer/read.html" in [template.name for template in response.templates]
    assert response.context["task"] == task
    assert response.context["api_urls"]["next_case"] == f"/api/tasks/{task.pk}/next-case/"
    assert response.context["api_urls"]["lease"] == "/api/cases/{case_id}/lease/"


def test_the_reading_page_of_a_closed_task_is_404():
    task = TaskFactory(is_open=False)
    client = Client()
    client.force_login(ReaderFactory().user)

    assert client.get(f"/read/{task.pk}/").status_code == 404


def test_an_account_without_reader_profile_is_sent_home_from_the_reading_page():
    task = TaskFactory()
    client = Client()
    client.force_login(admin_user())

    assert client.get(f"/read/{task.pk}/")["Location"] == "/"
