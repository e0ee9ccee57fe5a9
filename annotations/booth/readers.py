"""Reader accounts: booth sign-up and sign-in with a display name and a short PIN, attempt limits, booth sessions.

The PIN is kept in the Django user's password column as a keyed PIN hash (`pin_credentials`: a few
microseconds, where PBKDF2 took half a CPU-second); older PBKDF2 PIN hashes are replaced at the next
successful sign-in. Every PIN check is a guess reserved first in the shared cache (`sign_in_limits`):
strangers' wrong PINs slow down guessing against a name, never the reader on a device that signed in
under that name before (device cookie). Display names are stored normalised (`names`), and a name that
looks like an existing one is refused. This module must never store or log a PIN in clear, and must
never say whether a failed sign-in had the wrong name or the wrong PIN (one answer for both).
Booth mode is a property of the browser session: it ends the session after a
period of inactivity so the next person at a shared machine starts clean.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import login as django_login
from django.contrib.auth import logout as django_logout
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from annotations.booth import names, pin_credentials, sign_in_limits, teams
from annotations.booth.roles import READER, grant_role, is_researcher_or_admin
from annotations.booth.sign_in_limits import TooManyAttempts  # noqa: F401 (views catch readers.TooManyAttempts)
from annotations.models import Reader
from annotations.models.tasks import ReaderRole

PIN_PATTERN = re.compile(r"^\d{4,8}$")
BOOTH_MODE_KEY = "readerboard_booth_mode"
BOOTH_SEEN_KEY = "readerboard_booth_seen_at"
SIGN_IN_SCOPE = "reader"
# A 4-digit PIN has 10,000 values: wrong PINs against one name from devices that never signed in under it
# are slowed down whatever address they come from (sign_in_limits.READER_PINS), on top of the per-address rate.
FAILED_PINS_PER_NAME = sign_in_limits.READER_PINS.free_guesses
# The longest wait the slow-down asks for.
FAILED_PINS_WINDOW_S = sign_in_limits.READER_PINS.max_delay_s
DEFAULT_RATES = {"login": "20/min", "signup": "20/min", "console": "20/min"}
MAX_YEARS_EXPERIENCE = 70


class RegistrationError(ValueError):
    """A sign-up field is wrong; `field` names it for the form or API error."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class InvalidCredentials(Exception):
    """The display name and PIN do not match a reader (deliberately not saying which is wrong)."""


def normalise_display_name(display_name: str) -> str:
    """Return the stored form of a display name (NFKC, invisible characters removed, spaces collapsed)."""
    return names.normalise_name(display_name)


def username_for(display_name: str) -> str:
    """Return the internal username of a display name (case- and space-insensitive)."""
    return "reader:" + normalise_display_name(display_name).casefold()


@transaction.atomic
def register_reader(
    *,
    display_name: str,
    pin: str,
    role: str = "other",
    email: str = "",
    subspecialty: str = "",
    years_experience: int = 0,
    consented: bool = True,
    team: str = "",
) -> Reader:
    """Create a user and reader profile; raise RegistrationError (a ValueError) naming the wrong field.

    `team` is an optional team or institution name: an existing team of that name (ignoring case and
    spacing) is joined, else a new one is made.
    """
    name = normalise_display_name(display_name)
    if not 2 <= len(name) <= 80:
        raise RegistrationError("display_name", "Display name must be 2 to 80 characters.")
    if not PIN_PATTERN.match(pin or ""):
        raise RegistrationError("pin", "PIN must be 4 to 8 digits.")
    if not consented:
        raise RegistrationError("consent", "Consent is required to take part.")
    if role not in ReaderRole.values:
        raise RegistrationError("role", f"Role must be one of {', '.join(ReaderRole.values)}.")
    if not 0 <= int(years_experience) <= MAX_YEARS_EXPERIENCE:
        raise RegistrationError("years_experience", f"Years of experience must be 0 to {MAX_YEARS_EXPERIENCE}.")
    team_name = teams.normalise_team_name(team)
    if team_name and not 2 <= len(team_name) <= teams.MAX_TEAM_NAME:
        raise RegistrationError("team", f"Team name must be 2 to {teams.MAX_TEAM_NAME} characters.")
    # Hash before the first query: a request holds its pooled database connection from its first query on.
    pin_hash = pin_credentials.hash_pin(pin)
    User = get_user_model()
    username = username_for(name)
    skeleton = names.name_skeleton(name)
    _wait_for_sign_ups_of_the_same_look(skeleton or username)
    if User.objects.filter(username=username).exists() or Reader.objects.filter(display_name__iexact=name).exists():
        raise RegistrationError("display_name", f"The name {name!r} is taken; choose another or sign in.")
    look_alike = Reader.objects.filter(name_skeleton=skeleton).only("display_name").first() if skeleton else None
    if look_alike is not None:
        raise RegistrationError(
            "display_name",
            f"The name {name!r} looks like the name of another reader ({look_alike.display_name!r}) on the "
            "leaderboard; choose a clearly different one, or sign in if it is yours.",
        )
    try:
        reader_team = teams.team_for_name(team_name)
    except teams.TeamNameError as exc:
        raise RegistrationError("team", str(exc)) from None
    user = User(username=username, email=User.objects.normalize_email(email), password=pin_hash)
    user.save()
    grant_role(user, READER)
    return Reader.objects.create(
        team=reader_team,
        user=user,
        display_name=name,
        name_skeleton=skeleton,
        email=email,
        role=role,
        subspecialty=subspecialty.strip(),
        years_experience=years_experience,
        consented_at=timezone.now() if consented else None,
    )


def _wait_for_sign_ups_of_the_same_look(key: str) -> None:
    """Hold a transaction-scoped PostgreSQL advisory lock on the name's skeleton until the sign-up commits.

    Two simultaneous sign-ups with look-alike names ("Dr Ada Demo", "DR ADA DEM0") would each find the
    other absent and both get in; with the lock the second waits, then sees the first and is refused.
    SQLite serialises writers already (BEGIN IMMEDIATE), so there is nothing to do there.
    """
    if connection.vendor != "postgresql":
        return
    lock_id = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])


def authenticate_reader(*, display_name: str, pin: str, request: HttpRequest | None = None) -> Reader:
    """Return the active reader with this display name and PIN; raise InvalidCredentials or TooManyAttempts.

    The guess is reserved before any query or PIN check (`sign_in_limits.reserve_guess`): on the
    counter of this browser's device cookie when it names this reader, else on the name's counter
    shared by every unknown device and on the address's counter. A refused guess costs one or two cache
    operations and nothing else.
    """
    request_cookies = request.COOKIES if request is not None else {}
    reservation = sign_in_limits.reserve_guess(
        scope=SIGN_IN_SCOPE,
        identity=username_for(display_name or ""),
        policy=sign_in_limits.READER_PINS,
        client_key=client_address(request) if request is not None else None,
        device_cookie=request_cookies.get(sign_in_limits.DEVICE_COOKIE),
    )
    pin = pin or ""
    user = (
        get_user_model()
        .objects.select_related("reader")
        .filter(username=username_for(display_name or ""), is_active=True)
        .first()
    )
    reader = getattr(user, "reader", None) if user is not None else None
    if reader is None:
        pin_credentials.spend_equal_time(pin)
        sign_in_limits.guess_failed(reservation)
        raise InvalidCredentials("that name and PIN do not match a reader")
    matches, needs_rehash = pin_credentials.check_stored_pin(pin, user.password)
    if not matches:
        sign_in_limits.guess_failed(reservation)
        raise InvalidCredentials("that name and PIN do not match a reader")
    if needs_rehash and not (user.is_staff or user.is_superuser or is_researcher_or_admin(user)):
        # A PIN stored by the old PBKDF2 path: keep the keyed PIN hash from now on (admins and
        # researchers with a reader profile keep their strong hash).
        user.password = pin_credentials.hash_pin(pin)
        user.save(update_fields=["password"])
    sign_in_limits.guess_succeeded(reservation)
    return reader


def remember_device(request: HttpRequest, response: HttpResponse, *, reader: Reader) -> HttpResponse:
    """Give the browser a device cookie naming `reader`, after a sign-in or sign-up on it."""
    return sign_in_limits.remember_device(
        request, response, scope=SIGN_IN_SCOPE, identity=username_for(reader.display_name)
    )


def check_attempt_rate(*, scope: str, client_key: str, now_s: float | None = None) -> None:
    """Count one attempt of `scope` ("login", "signup", "console") from `client_key`; TooManyAttempts over the rate.

    Rates are REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] ("20/min"), so the API and the
    HTML forms share one budget per address. The attempt is counted atomically in the shared cache
    (a sliding window of sub-window counters), so parallel requests never get past the rate together.
    """
    limit, window_s = _parse_rate(_rate_for(scope))
    sign_in_limits.reserve_in_window(
        key=f"readerboard:rate:{scope}:{client_key}",
        limit=limit,
        window_s=window_s,
        now_s=time.time() if now_s is None else now_s,
    )


def client_address(request: HttpRequest) -> str:
    """Return the address rate limits are keyed on (the direct peer; proxies are trusted only via REMOTE_ADDR)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def sign_in(request: HttpRequest, *, reader: Reader, booth_mode: bool = False) -> None:
    """Log the reader's user into this browser session, in booth mode if asked."""
    django_login(request, reader.user, backend="annotations.auth_backends.ReaderSessionBackend")
    request.session[BOOTH_MODE_KEY] = bool(booth_mode)
    if booth_mode:
        note_booth_activity(request)


def sign_out(request: HttpRequest) -> None:
    """End the session (flushes everything, booth flag included)."""
    django_logout(request)


def is_booth_session(request: HttpRequest) -> bool:
    return bool(getattr(request, "session", None) and request.session.get(BOOTH_MODE_KEY))


def booth_idle_seconds() -> int:
    return int(settings.READERBOARD.get("BOOTH_IDLE_SECONDS", 600))


def booth_session_expired(*, last_seen_s: float | None, now_s: float, idle_s: int) -> bool:
    """Return True when a booth session unseen since `last_seen_s` has been idle longer than `idle_s`."""
    return last_seen_s is None or now_s - last_seen_s > idle_s


def enforce_booth_session(request: HttpRequest, *, activity: bool = True, now_s: float | None = None) -> bool:
    """Sign a booth session out if it has been idle too long, else note this request as activity (if it is one).

    Returns True when the session was signed out. Non-booth sessions are left alone. Requests a timer
    makes (lease renewals without input) pass activity=False so a walked-away reader still times out.
    """
    if not is_booth_session(request) or not request.user.is_authenticated:
        return False
    now_s = time.time() if now_s is None else now_s
    if booth_session_expired(last_seen_s=request.session.get(BOOTH_SEEN_KEY), now_s=now_s, idle_s=booth_idle_seconds()):
        sign_out(request)
        return True
    if activity:
        note_booth_activity(request, now_s=now_s)
    return False


def note_booth_activity(request: HttpRequest, *, now_s: float | None = None) -> None:
    """Record activity; the session cookie and row also expire after the idle time, as a second guard."""
    request.session[BOOTH_SEEN_KEY] = time.time() if now_s is None else now_s
    request.session.set_expiry(booth_idle_seconds())


@dataclass(frozen=True)
class BoothStatus:
    booth_mode: bool
    idle_seconds: int


def booth_status(request: HttpRequest) -> BoothStatus:
    return BoothStatus(booth_mode=is_booth_session(request), idle_seconds=booth_idle_seconds())


def _rate_for(scope: str) -> str:
    rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}) or {}
    return rates.get(scope) or DEFAULT_RATES.get(scope, "20/min")


def _parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]
    return int(count), seconds
