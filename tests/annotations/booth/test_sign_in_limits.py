"""Sign-in limits (annotations.booth.sign_in_limits): atomic guess counting, device cookies, slow-down, console."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.test import Client
from rest_framework.test import APIClient

from annotations.booth import pin_credentials, readers, sign_in_limits
from tests.concurrency import require_postgresql, run_at_once
from tests.factories import FACTORY_PASSWORD, admin_user

pytestmark = pytest.mark.django_db

REDIS_LOCATION = "redis://127.0.0.1:6379/14"
PARALLEL_SIGN_INS = 50


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def redis_cache(settings):
    """The default cache on Redis under a prefix of its own (never flushes the database others may use)."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_LOCATION, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_LOCATION}: {exc}")
    prefix = f"rb-test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_LOCATION,
            "KEY_PREFIX": prefix,
        }
    }
    yield prefix
    client = redis.Redis.from_url(REDIS_LOCATION)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def make_reader(name: str = "Dr Ada Test", pin: str = "2468"):
    return readers.register_reader(display_name=name, pin=pin, role="attending")


def count_pin_checks(monkeypatch) -> list[int]:
    """Count every PIN evaluation (known or unknown name), from any thread."""
    checks: list[int] = []
    check_stored_pin, spend_equal_time = pin_credentials.check_stored_pin, pin_credentials.spend_equal_time

    def counted_check(pin, encoded):
        checks.append(1)
        return check_stored_pin(pin, encoded)

    def counted_spend(pin):
        checks.append(1)
        return spend_equal_time(pin)

    monkeypatch.setattr(pin_credentials, "check_stored_pin", counted_check)
    monkeypatch.setattr(pin_credentials, "spend_equal_time", counted_spend)
    return checks


def sign_in_in_parallel(count: int, *, display_name: str, pin: str) -> dict[str, int]:
    """Run `count` sign-ins at once from threads (each its own database connection); return outcomes by kind."""

    def attempt() -> str:
        try:
            readers.authenticate_reader(display_name=display_name, pin=pin)
        except readers.InvalidCredentials:
            return "wrong"
        except readers.TooManyAttempts:
            return "refused"
        return "signed_in"

    outcomes = run_at_once([attempt] * count, timeout_s=120)
    return dict(Counter(outcome if isinstance(outcome, str) else repr(outcome) for outcome in outcomes))


# --- Atomic counting under concurrency -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_sign_ins_against_one_name_evaluate_no_more_pins_than_the_limit(monkeypatch):
    require_postgresql()
    make_reader()
    checks = count_pin_checks(monkeypatch)

    outcomes = sign_in_in_parallel(PARALLEL_SIGN_INS, display_name="Dr Ada Test", pin="0000")

    assert len(checks) <= readers.FAILED_PINS_PER_NAME, outcomes
    assert outcomes == {"wrong": len(checks), "refused": PARALLEL_SIGN_INS - len(checks)}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_sign_ins_on_the_redis_cache_evaluate_no_more_pins_than_the_limit(monkeypatch, redis_cache):
    require_postgresql()
    make_reader()
    checks = count_pin_checks(monkeypatch)

    outcomes = sign_in_in_parallel(PARALLEL_SIGN_INS, display_name="Dr Ada Test", pin="0000")

    assert len(checks) <= readers.FAILED_PINS_PER_NAME, outcomes
    assert outcomes == {"wrong": len(checks), "refused": PARALLEL_SIGN_INS - len(checks)}


@pytest.mark.redis
def test_two_server_processes_on_redis_share_one_count_of_guesses(monkeypatch, redis_cache):
    make_reader()
    # Two cache clients with their own connections, as two web processes have.
    processes = [RedisCache(REDIS_LOCATION, {"KEY_PREFIX": redis_cache}) for _ in range(2)]
    answers = []
    for attempt in range(readers.FAILED_PINS_PER_NAME + 2):
        monkeypatch.setattr(sign_in_limits, "cache", processes[attempt % 2])
        try:
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")
            answers.append("signed in")
        except readers.InvalidCredentials:
            answers.append("wrong")
        except readers.TooManyAttempts:
            answers.append("refused")

    assert answers == ["wrong"] * readers.FAILED_PINS_PER_NAME + ["refused"] * 2


def test_per_process_memory_caches_would_each_allow_the_free_guesses(monkeypatch):
    # Why production needs a shared cache (annotations.checks): two processes, two memories, twice the guesses.
    make_reader()
    processes = [LocMemCache(f"process-{n}-{uuid.uuid4().hex}", {}) for n in range(2)]
    evaluated = 0
    for attempt in range(2 * readers.FAILED_PINS_PER_NAME):
        monkeypatch.setattr(sign_in_limits, "cache", processes[attempt % 2])
        try:
            readers.authenticate_reader(display_name="Dr Ada Test", pin="0000")
        except readers.InvalidCredentials:
            evaluated += 1
        except readers.TooManyAttempts:
            pass

    assert evaluated == 2 * readers.FAILED_PINS_PER_NAME


# --- Device cookies: strangers cannot lock a reader out ---------------------------------------------


def login(client: APIClient, pin: str, *, address: str = "127.0.0.1", name: str = "Dr Ada Test"):
    return client.post("/api/login/", {"display_name": name, "pin": pin}, format="json", REMOTE_ADDR=address)


def test_strangers_wrong_pins_leave_the_reader_signing_in_on_a_device_used_before():
    make_reader()
    readers_tablet = APIClient()
    assert login(readers_tablet, "2468").status_code == 200
    assert sign_in_limits.DEVICE_COOKIE in readers_tablet.cookies
    strangers = [login(APIClient(), f"{n:04d}", address=f"10.1.{n // 200}.{n % 200}").status_code for n in range(40)]

    on_the_tablet = login(readers_tablet, "2468")
    on_a_new_phone = login(APIClient(), "2468", address="10.9.9.9")

    assert strangers.count(400) == readers.FAILED_PINS_PER_NAME and strangers.count(429) == 30
    assert on_the_tablet.status_code == 200
    # A device that never signed in under the name shares the strangers' slow-down: it is told to wait.
    assert on_a_new_phone.status_code == 429 and int(on_a_new_phone["Retry-After"]) > 0


def test_a_device_cookie_works_on_the_sign_in_page_too():
    make_reader()
    tablet = Client()
    assert tablet.post("/login/", {"display_name": "Dr Ada Test", "pin": "2468"}).status_code == 302
    for n in range(readers.FAILED_PINS_PER_NAME + 3):
        Client().post("/login/", {"display_name": "Dr Ada Test", "pin": f"{n:04d}"}, REMOTE_ADDR=f"10.2.0.{n}")

    stranger = Client().post("/login/", {"display_name": "Dr Ada Test", "pin": "2468"}, REMOTE_ADDR="10.2.1.1")
    reader = tablet.post("/login/", {"display_name": "Dr Ada Test", "pin": "2468"})

    assert stranger.status_code == 429 and int(stranger["Retry-After"]) > 0
    assert reader.status_code == 302


def test_a_device_guessing_wrong_is_slowed_down_on_its_own_counter():
    make_reader()
    make_reader("Ben Other", pin="1357")
    tablet = APIClient()
    assert login(tablet, "2468").status_code == 200
    answers = [login(tablet, "0000").status_code for _ in range(readers.FAILED_PINS_PER_NAME + 1)]

    from_elsewhere = login(APIClient(), "2468", address="10.3.0.1")

    assert answers == [400] * readers.FAILED_PINS_PER_NAME + [429]
    assert from_elsewhere.status_code == 200  # the device's failures are its own


def test_a_forged_or_foreign_device_cookie_is_no_device_cookie():
    make_reader()
    make_reader("Ben Other", pin="1357")
    bens_phone = APIClient()
    assert login(bens_phone, "1357", name="Ben Other").status_code == 200
    for n in range(readers.FAILED_PINS_PER_NAME):
        login(APIClient(), f"{n:04d}", address=f"10.4.0.{n}")
    forged = APIClient()
    forged.cookies[sign_in_limits.DEVICE_COOKIE] = bens_phone.cookies[sign_in_limits.DEVICE_COOKIE].value + "x"

    # Ben's cookie names Ben, not Ada; an altered cookie names nobody.
    assert login(bens_phone, "2468").status_code == 429
    assert login(forged, "2468").status_code == 429


def test_the_device_cookie_is_signed_http_only_and_remembers_several_readers_of_a_shared_tablet():
    make_reader()
    make_reader("Ben Other", pin="1357")
    tablet = APIClient()
    login(tablet, "2468")
    login(tablet, "1357", name="Ben Other")
    cookie = tablet.cookies[sign_in_limits.DEVICE_COOKIE]
    value = cookie.value

    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert sign_in_limits.trusted_device_nonce(value, scope="reader", identity=readers.username_for("Dr Ada Test"))
    assert sign_in_limits.trusted_device_nonce(value, scope="reader", identity=readers.username_for("ben other"))
    assert not sign_in_limits.trusted_device_nonce(value, scope="reader", identity=readers.username_for("Cy Third"))


def test_sign_up_gives_the_device_its_cookie():
    client = APIClient()
    body = {"display_name": "New Reader", "pin": "1234", "role": "student", "years_experience": 0, "consent": True}

    response = client.post("/api/signup/", body, format="json")

    assert response.status_code == 201 and sign_in_limits.DEVICE_COOKIE in response.cookies


# --- Per address ------------------------------------------------------------------------------------


def test_one_address_guessing_across_many_names_is_limited(monkeypatch):
    monkeypatch.setattr(sign_in_limits, "ADDRESS_GUESSES_PER_HOUR", 5)
    for n in range(6):
        make_reader(f"Reader Number {chr(65 + n)}", pin="2468")
    answers = [login(APIClient(), "0000", address="10.5.0.1", name=f"Reader Number {chr(65 + n)}") for n in range(6)]

    assert [a.status_code for a in answers] == [400] * 5 + [429]
    assert login(APIClient(), "2468", address="10.5.0.2", name="Reader Number F").status_code == 200


def test_a_successful_sign_in_gives_the_address_its_guess_back(monkeypatch):
    monkeypatch.setattr(sign_in_limits, "ADDRESS_GUESSES_PER_HOUR", 2)
    make_reader()
    make_reader("Ben Other", pin="1357")
    for _ in range(3):
        assert login(APIClient(), "2468", address="10.6.0.1").status_code == 200

    assert login(APIClient(), "0000", address="10.6.0.1", name="Ben Other").status_code == 400


def test_the_sliding_window_never_lets_parallel_requests_past_the_rate():
    def attempt() -> None:
        sign_in_limits.reserve_in_window(key="test:window", limit=7, window_s=60, now_s=time.time())

    outcomes = run_at_once([attempt] * 30, timeout_s=30)

    assert outcomes.count(None) == 7
    assert all(isinstance(outcome, sign_in_limits.TooManyAttempts) for outcome in outcomes if outcome is not None)


# --- Console ----------------------------------------------------------------------------------------

ADMIN_PASSWORD = FACTORY_PASSWORD


def console_login(client: Client, password: str, *, address: str = "127.0.0.1", username: str = "boss"):
    return client.post("/console/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_console_sign_in_slows_down_password_guessing_and_does_not_hash_refused_guesses(monkeypatch):
    admin_user(username="boss")
    free = sign_in_limits.CONSOLE_PASSWORDS.free_guesses
    wrong = [console_login(Client(), f"guess-{n}", address=f"10.7.0.{n}").status_code for n in range(free)]
    hashed: list[int] = []
    from django.contrib.auth.backends import ModelBackend

    original = ModelBackend.authenticate
    monkeypatch.setattr(ModelBackend, "authenticate", lambda self, *a, **k: hashed.append(1) or original(self, *a, **k))

    right = console_login(Client(), ADMIN_PASSWORD, address="10.7.1.1")

    assert wrong == [200] * free  # the form again, with Django's "enter a correct username and password"
    assert right.status_code == 429 and int(right["Retry-After"]) > 0
    assert "Too many sign-in attempts" in right.content.decode()
    assert hashed == []


def test_an_admins_browser_signs_in_to_the_console_despite_strangers_guesses():
    admin_user(username="boss")
    laptop = Client()
    assert console_login(laptop, ADMIN_PASSWORD).status_code == 302
    for n in range(sign_in_limits.CONSOLE_PASSWORDS.free_guesses + 5):
        console_login(Client(), f"guess-{n}", address=f"10.8.0.{n}")

    assert console_login(Client(), ADMIN_PASSWORD, address="10.8.1.1").status_code == 429
    assert console_login(laptop, ADMIN_PASSWORD).status_code == 302


def test_the_django_admin_login_goes_through_the_limited_console_sign_in():
    response = Client().get("/django-admin/login/?next=/django-admin/")

    assert response.status_code == 302 and response["Location"] == "/console/login/?next=/django-admin/"


# --- Console passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["12345678", "123456789012", "password1234", "short-pw", "dr.ng.account"])
def test_an_invited_colleague_cannot_choose_a_weak_console_password(client, weak):
    client.force_login(admin_user())
    page = client.post(
        "/console/people/", {"action": "invite", "username": "dr.ng.account", "email": "", "role": "researcher"}
    ).content.decode()
    link = page.split('value="http://testserver')[1].split('"')[0]
    client.logout()

    answer = client.post(link, {"new_password1": weak, "new_password2": weak})

    assert answer.status_code == 200 and "errorlist" in answer.content.decode()
    assert not get_user_model().objects.get(username="dr.ng.account").has_usable_password()


def test_the_demo_console_passwords_pass_the_validators():
    from annotations.demo.ct_demo import DEMO_ADMIN, DEMO_RESEARCHER

    for username, password in (DEMO_ADMIN, DEMO_RESEARCHER):
        validate_password(password, get_user_model()(username=username))
