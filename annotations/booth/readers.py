"""Reader accounts: booth sign-up and sign-in with a display name and a short PIN, rate limits, booth sessions.

The PIN is kept in the Django user's password column as a keyed PIN hash (`pin_credentials`: a few
microseconds, where PBKDF2 took half a CPU-second); older PBKDF2 PIN hashes are replaced at the next
successful sign-in. Failed PINs lock the name (not the address, not other readers) for a while.
This module must never store or log a PIN in clear, and must never say whether a
failed sign-in had the wrong name or the wrong PIN (one answer for both).
Booth mode is a property of the browser session: it ends the session after a
period of inactivity so the next person at a shared machine starts clean.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import login as django_login
from django.contrib.auth import logout as django_logout
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from annotations.booth import pin_credentials, teams
from annotations.booth.roles import READER, grant_role, is_researcher_or_admin
from annotations.models import Reader
from annotations.models.tasks import ReaderRole

PIN_PATTERN = re.compile(r"^\d{4,8}$")
BOOTH_MODE_KEY = "readerboard_booth_mode"
BOOTH_SEEN_KEY = "readerboard_booth_seen_at"
# A 4-digit PIN has 10,000 values: failed sign-ins per display name are capped
# whatever address they come from, on top of the per-address rate.
FAILED_PINS_PER_NAME = 10
FAILED_PINS_WINDOW_S = 15 * 60
DEFAULT_RATES = {"login": "20/min", "signup": "20/min"}
MAX_YEARS_EXPERIENCE = 70


class RegistrationError(ValueError):
    """A sign-up field is wrong; `field` names it for the form or API error."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class InvalidCredentials(Exception):
    """The display name and PIN do not match a reader (deliberately not saying which is wrong)."""


class TooManyAttempts(Exception):
    """Too many attempts from one address or against one name; retry after `retry_after_s`."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"too many attempts; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def normalise_display_name(display_name: str) -> str:
    """Return a display name with outer space stripped and inner runs of space collapsed."""
    return re.sub(r"\s+", " ", display_name.strip())


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
    if User.objects.filter(username=username).exists() or Reader.objects.filter(display_name__iexact=name).exists():
        raise RegistrationError("display_name", f"The name {name!r} is taken; choose another or sign in.")
    user = User(username=username, email=User.objects.normalize_email(email), password=pin_hash)
    user.save()
    grant_role(user, READER)
    return Reader.objects.create(
        team=teams.team_for_name(team_name),
        user=user,
        display_name=name,
        email=email,
        role=role,
        subspecialty=subspecialty.strip(),
        years_experience=years_experience,
        consented_at=timezone.now() if consented else None,
    )


def authenticate_reader(*, display_name: str, pin: str, request: HttpRequest | None = None) -> Reader:
    """Return the active reader with this display name and PIN; raise InvalidCredentials or TooManyAttempts.

    A name with FAILED_PINS_PER_NAME wrong PINs in FAILED_PINS_WINDOW_S is locked until the window ends,
    right PIN or not; the check is one cache read before any query, so a locked name costs others nothing.
    """
    name_key = _name_key(display_name)
    locked_until_s = cache.get(name_key + ":locked")
    if locked_until_s is not None:
        raise TooManyAttempts(max(1, int(locked_until_s - time.time()) + 1))
    pin = pin or ""
    user = (
        get_user_model()
        .objects.select_related("reader")
        .filter(username=username_for(display_name), is_active=True)
        .first()
    )
    reader = getattr(user, "reader", None) if user is not None else None
    if reader is None:
        pin_credentials.spend_equal_time(pin)
        _count_failure(name_key)
        raise InvalidCredentials("that name and PIN do not match a reader")
    matches, needs_rehash = pin_credentials.check_stored_pin(pin, user.password)
    if not matches:
        _count_failure(name_key)
        raise InvalidCredentials("that name and PIN do not match a reader")
    if needs_rehash and not (user.is_staff or user.is_superuser or is_researcher_or_admin(user)):
        # A PIN stored by the old PBKDF2 path: keep the keyed PIN hash from now on (admins and
        # researchers with a reader profile keep their strong hash).
        user.password = pin_credentials.hash_pin(pin)
        user.save(update_fields=["password"])
    cache.delete(name_key)
    return reader


def _count_failure(name_key: str) -> None:
    """Count one wrong PIN against a name; at the limit, lock the name for the rest of the window."""
    if cache.add(name_key, 1, FAILED_PINS_WINDOW_S):
        failures = 1
    else:
        try:
            failures = cache.incr(name_key)
        except ValueError:  # expired between add and incr
            cache.set(name_key, 1, FAILED_PINS_WINDOW_S)
            failures = 1
    if failures >= FAILED_PINS_PER_NAME:
        cache.set(name_key + ":locked", time.time() + FAILED_PINS_WINDOW_S, FAILED_PINS_WINDOW_S)
        cache.delete(name_key)


def check_attempt_rate(*, scope: str, client_key: str, now_s: float | None = None) -> None:
    """Count one attempt of `scope` ("login", "signup") from `client_key`; raise TooManyAttempts over the rate.

    Rates are REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] ("20/min"), so the API and the
    HTML forms share one budget per address.
    """
    limit, window_s = _parse_rate(_rate_for(scope))
    now_s = time.time() if now_s is None else now_s
    key = f"readerboard:rate:{scope}:{client_key}"
    history = [t for t in cache.get(key, []) if t > now_s - window_s]
    if len(history) >= limit:
        raise TooManyAttempts(max(1, int(history[0] + window_s - now_s) + 1))
    history.append(now_s)
    cache.set(key, history, window_s)


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


def _name_key(display_name: str) -> str:
    import hashlib

    digest = hashlib.sha256(username_for(display_name or "").encode()).hexdigest()[:32]
    return f"readerboard:failed-pin:{digest}"


def _rate_for(scope: str) -> str:
    rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}) or {}
    return rates.get(scope) or DEFAULT_RATES.get(scope, "20/min")


def _parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]
    return int(count), seconds
