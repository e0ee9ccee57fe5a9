"""Sign-in attempt limits: guesses reserved atomically in the shared cache, an exponential slow-down, device cookies.

Every PIN or password check is a guess, and a guess is only evaluated after it has been reserved with
an atomic cache operation (`add`/`incr`), so no number of parallel requests gets more guesses checked
than the limits allow. The counters live in Django's default cache: Redis when REDIS_URL is set, so all
web processes share them (`annotations.checks` fails `check --deploy` in production without a shared,
atomic cache).

Limits, per sign-in scope ("reader" PINs, "console" passwords):
- per name, for devices that never signed in under that name: `SlowDown.free_guesses` guesses, then one
  guess per wait, the wait doubling from `first_delay_s` up to `max_delay_s` (429 + Retry-After, never a
  hard lock); a success resets it;
- per name and device, for a device holding a device cookie for that name (OWASP "Slow Down Online
  Guessing Attacks with Device Cookies"): the same slow-down on a counter of its own, so strangers'
  failures never slow the reader on a device they signed in on before;
- per client address: `ADDRESS_GUESSES_PER_HOUR` guesses that did not succeed, from devices without a
  device cookie for the name (many names from one address);
- and `reserve_in_window`, the sliding window behind the per-address rate of sign-in and sign-up requests
  (`readers.check_attempt_rate`).

This module must never store or log a PIN or password; its callers must never check a guess before reserving it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

DEVICE_COOKIE = "readerboard_device"
DEVICE_COOKIE_MAX_AGE_S = 180 * 24 * 3600
# A booth tablet is shared by many readers: the cookie remembers the most recent names signed in on it.
DEVICE_COOKIE_MAX_NAMES = 20
_DEVICE_SALT = "readerboard.device-cookie.v1"
ADDRESS_GUESSES_PER_HOUR = 60
# Sub-windows of a sliding window: a limit counts the current one and those still inside the window.
_WINDOW_SLICES = 12


class TooManyAttempts(Exception):
    """Too many attempts from one address or against one name; retry after `retry_after_s`."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"too many attempts; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SlowDown:
    """Guesses allowed against one name: `free_guesses` at once, then one per wait that doubles up to a cap."""

    free_guesses: int
    first_delay_s: int
    max_delay_s: int
    # A counter of failed guesses is forgotten this long after its first guess.
    window_s: int

    def delay_s(self, guess_number: int) -> int:
        """Return the wait after guess `guess_number` (1-based) before the next guess is evaluated (0: none)."""
        if guess_number < self.free_guesses:
            return 0
        return min(self.max_delay_s, self.first_delay_s * 2 ** (guess_number - self.free_guesses))


READER_PINS = SlowDown(free_guesses=10, first_delay_s=30, max_delay_s=15 * 60, window_s=24 * 3600)
CONSOLE_PASSWORDS = SlowDown(free_guesses=5, first_delay_s=30, max_delay_s=15 * 60, window_s=24 * 3600)


@dataclass(frozen=True)
class Reservation:
    """One reserved guess: the counters to reset or give back once its outcome is known."""

    name_key: str
    address_slot: str | None
    trusted_device: bool


def reserve_guess(
    *,
    scope: str,
    identity: str,
    policy: SlowDown,
    client_key: str | None = None,
    device_cookie: str | None = None,
) -> Reservation:
    """Reserve one guess against `identity` (a normalised name) or raise TooManyAttempts with the wait.

    Call before checking the PIN or password, then `guess_succeeded` or `guess_failed` with the result.
    """
    nonce = trusted_device_nonce(device_cookie, scope=scope, identity=identity)
    name_key = _identity_key(scope, identity) + (f":device:{nonce}" if nonce else ":untrusted")
    address_slot = None
    if client_key and nonce is None:
        address_slot = reserve_in_window(
            key=f"readerboard:guesses:{scope}:{_digest(client_key)}",
            limit=ADDRESS_GUESSES_PER_HOUR,
            window_s=3600,
            now_s=time.time(),
        )
    try:
        _reserve_slowed_guess(name_key, policy)
    except TooManyAttempts:
        if address_slot is not None:
            _give_back(address_slot)
        raise
    return Reservation(name_key=name_key, address_slot=address_slot, trusted_device=nonce is not None)


def guess_succeeded(reservation: Reservation) -> None:
    """The guess was right: forget this name's (or device's) failures and give the address its guess back."""
    cache.delete_many([reservation.name_key + ":n", reservation.name_key + ":gate"])
    if reservation.address_slot is not None:
        _give_back(reservation.address_slot)


def guess_failed(reservation: Reservation) -> None:
    """The guess was wrong: it stays counted (the reservation already counted it)."""


def _reserve_slowed_guess(key: str, policy: SlowDown) -> None:
    """Count guess n against `key`; from n = free_guesses on, each guess holds a gate for its delay.

    The gate is taken with `cache.add` (atomic, first writer wins) when the guess is reserved, so while
    it stands no other guess is evaluated, however many arrive at once; a refused request gives its
    count back so the delay grows with guesses evaluated, not with requests refused.
    """
    gate = key + ":gate"
    now_s = time.time()
    until_s = cache.get(gate)
    if until_s is not None and until_s > now_s:
        raise TooManyAttempts(_seconds(until_s - now_s))
    guess_number = _count(key + ":n", policy.window_s)
    delay_s = policy.delay_s(guess_number)
    if delay_s == 0 or cache.add(gate, now_s + delay_s, delay_s):
        return
    _give_back(key + ":n")
    until_s = cache.get(gate)
    raise TooManyAttempts(_seconds((until_s or now_s + 1) - now_s))


def reserve_in_window(*, key: str, limit: int, window_s: int, now_s: float) -> str:
    """Reserve one of `limit` attempts in the sliding `window_s` ending now; return the counter to give it back to.

    The window is cut into slices: the current slice's counter is incremented atomically and the sum of
    the slices still inside the window decides; an attempt over the limit takes its count back and
    raises TooManyAttempts saying when the oldest counted slice leaves the window.
    """
    slice_s = window_s / _WINDOW_SLICES
    current = int(now_s // slice_s)
    earlier_keys = {f"{key}:{index}": index for index in range(current - _WINDOW_SLICES + 1, current)}
    earlier = cache.get_many(list(earlier_keys))
    slot = f"{key}:{current}"
    taken = _count(slot, int(window_s + slice_s) + 1)
    if sum(int(value) for value in earlier.values()) + taken <= limit:
        return slot
    _give_back(slot)
    counted = [earlier_keys[k] for k, value in earlier.items() if int(value) > 0]
    oldest = min(counted, default=current)
    raise TooManyAttempts(_seconds((oldest + _WINDOW_SLICES) * slice_s - now_s))


# --- device cookies ------------------------------------------------------------------------------


def trusted_device_nonce(cookie: str | None, *, scope: str, identity: str) -> str | None:
    """Return this device's nonce for `identity` when its device cookie is genuine and names it, else None."""
    digest = _identity_digest(scope, identity)
    for name, nonce in _device_entries(cookie):
        if name == digest:
            return nonce
    return None


def device_cookie_after_sign_in(cookie: str | None, *, scope: str, identity: str) -> str:
    """Return the device cookie value naming `identity` (its nonce kept if known) with the device's other names."""
    digest = _identity_digest(scope, identity)
    entries = _device_entries(cookie)
    nonce = next((n for name, n in entries if name == digest), None) or secrets.token_urlsafe(12)
    kept = [[name, n] for name, n in entries if name != digest][: DEVICE_COOKIE_MAX_NAMES - 1]
    return signing.dumps([[digest, nonce], *kept], salt=_DEVICE_SALT, compress=True)


def remember_device(request: HttpRequest, response: HttpResponse, *, scope: str, identity: str) -> HttpResponse:
    """Set the device cookie on `response` after a successful sign-in (or sign-up) of `identity`."""
    value = device_cookie_after_sign_in(request.COOKIES.get(DEVICE_COOKIE), scope=scope, identity=identity)
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE_S,
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Lax",
    )
    return response


def _device_entries(cookie: str | None) -> list[tuple[str, str]]:
    if not cookie:
        return []
    try:
        entries = signing.loads(cookie, salt=_DEVICE_SALT, max_age=DEVICE_COOKIE_MAX_AGE_S)
    except signing.BadSignature:  # forged, altered, expired or from another SECRET_KEY
        return []
    if not isinstance(entries, list):
        return []
    return [(str(e[0]), str(e[1])) for e in entries if isinstance(e, list) and len(e) == 2]


# --- counters --------------------------------------------------------------------------------------


def _count(key: str, timeout_s: int) -> int:
    """Atomically add one to `key` (made with `timeout_s` if new) and return the new value."""
    for _ in range(5):
        if cache.add(key, 1, timeout_s):
            return 1
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr: add again
            continue
    raise RuntimeError(f"the cache would neither add nor increment {key!r}")


def _give_back(key: str) -> None:
    with contextlib.suppress(ValueError):  # expired meanwhile: nothing left to give back
        cache.decr(key)


def _seconds(wait_s: float) -> int:
    return max(1, math.ceil(wait_s))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _identity_digest(scope: str, identity: str) -> str:
    return hashlib.sha256(f"{scope}:{identity}".encode()).hexdigest()[:20]


def _identity_key(scope: str, identity: str) -> str:
    return f"readerboard:guesses:{scope}:name:{_identity_digest(scope, identity)}"
