"""Who is asking and may they see this instance, answered without a database query on the hot path.

A viewer scrolling a series sends one request per slice, so the per-request cost of
authentication and the access check dominates once pixels are cached. This module
memoises, per server process and for READERBOARD["IMAGE_ACCESS_CACHE_SECONDS"]
(default 10 s): the user behind a session cookie or DRF token, and each
(user, series) visibility decision from the access policy, and each series' version
(its instance count and last id). Instances and series are memoised by their UIDs
(immutable). So revoking a token, signing out or closing a task takes effect within
that many seconds, and so do instances added to a series already being served. It
must never widen access: a cached entry only repeats an answer the policy gave, and
anonymous requests are never cached.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from viewer import selectors
from viewer.models import Instance, Series

MAX_ENTRIES = 50_000
DEFAULT_TTL_SECONDS = 10.0


class NotAuthenticatedError(Exception):
    """No valid session or token; the message says what to send."""


class _TTLCache:
    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: tuple, ttl_s: float):
        if ttl_s <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if time.monotonic() - stored_at > ttl_s:
                del self._entries[key]
                return None
            return value

    def put(self, key: tuple, value) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_users = _TTLCache(MAX_ENTRIES)
_decisions = _TTLCache(MAX_ENTRIES)
_instances = _TTLCache(MAX_ENTRIES)
_series = _TTLCache(MAX_ENTRIES)
_versions = _TTLCache(MAX_ENTRIES)
# How long a UID -> row lookup is kept: the mapping never changes, only deletion ends it.
IDENTITY_TTL_SECONDS = 60.0


def ttl_seconds() -> float:
    return float(settings.READERBOARD.get("IMAGE_ACCESS_CACHE_SECONDS", DEFAULT_TTL_SECONDS))


def _scope() -> str:
    # One process may serve several stores (tests): never mix their ids.
    return str(settings.DATA_DIR)


def cache_scope() -> str:
    """The store this process serves, for memos elsewhere keyed by database ids."""
    return _scope()


def request_user(request: HttpRequest):
    """Return the authenticated user of a request (session cookie or `Authorization: Token`)."""
    ttl = ttl_seconds()
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session_key:
        cached = _users.get((_scope(), "session", session_key), ttl)
        if cached is not None:
            return cached
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            _users.put((_scope(), "session", session_key), user)
            return user
    else:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:  # e.g. force_login in tests, remote-user setups
            return user
    header = get_authorization_header(request)
    if header:
        cached = _users.get((_scope(), "token", header), ttl)
        if cached is not None:
            return cached
        try:
            result = TokenAuthentication().authenticate(request)
        except AuthenticationFailed as error:
            raise NotAuthenticatedError(str(error.detail)) from None
        if result is not None:
            _users.put((_scope(), "token", header), result[0])
            return result[0]
    raise NotAuthenticatedError("sign in or send 'Authorization: Token <key>' to load images")


def may_see_series(*, user, series_id: int) -> bool:
    """Return whether the access policy lets this user see a series (memoised briefly)."""
    key = (_scope(), user.pk, series_id)
    decision = _decisions.get(key, ttl_seconds())
    if decision is None:
        decision = selectors.visible_series(user=user).filter(pk=series_id).exists()
        _decisions.put(key, decision)
    return decision


def visible_instance(*, user, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    """Return an instance the user may see by its three UIDs, or raise selectors.NotVisibleError."""
    key = (_scope(), study_uid, series_uid, sop_uid)
    instance = _instances.get(key, IDENTITY_TTL_SECONDS)
    if instance is None:
        with _one_loader_per_series(study_uid, series_uid):
            instance = _instances.get(key, IDENTITY_TTL_SECONDS)  # filled while this request waited?
            if instance is None:
                instance = _memoise_series_instances(study_uid, series_uid, wanted_sop_uid=sop_uid)
    if instance is None or not may_see_series(user=user, series_id=instance.series_id):
        raise selectors.NotVisibleError(f"instance {sop_uid} of series {series_uid} not found")
    return instance


def _memoise_series_instances(study_uid: str, series_uid: str, *, wanted_sop_uid: str) -> Instance | None:
    """Memoise every instance of a series (a viewer asks for each slice in turn); return the wanted one."""
    series = Series.objects.filter(series_instance_uid=series_uid, study__study_instance_uid=study_uid)
    series = series.select_related("study").first()
    if series is None:
        return None
    wanted = None
    for sibling in Instance.objects.filter(series=series):
        sibling.series = series  # one shared Series (and Study) instead of a copy per row
        _instances.put((_scope(), study_uid, series_uid, sibling.sop_instance_uid), sibling)
        if sibling.sop_instance_uid == wanted_sop_uid:
            wanted = sibling
    return wanted


_LOADER_LOCKS = [threading.Lock() for _ in range(64)]


@contextmanager
def _one_loader_per_series(study_uid: str, series_uid: str) -> Iterator[None]:
    """Let one thread query a series' instances while concurrent requests for it wait, then hit the memo.

    A viewer opening a series sends many requests at once; without this each ran the same query.
    On the event loop (the DICOMweb fast path) it never waits: the database is not allowed
    there anyway, so the request moves to a worker thread as any database access would.
    """
    lock = _LOADER_LOCKS[hash((study_uid, series_uid)) % len(_LOADER_LOCKS)]
    if not lock.acquire(blocking=False):
        if _on_event_loop():
            raise SynchronousOnlyOperation("the instances of this series are being loaded by another request")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def visible_series(*, user, study_uid: str, series_uid: str) -> Series:
    """Return a series the user may see by its UIDs, or raise selectors.NotVisibleError."""
    key = (_scope(), study_uid, series_uid)
    series = _series.get(key, IDENTITY_TTL_SECONDS)
    if series is None:
        series = (
            Series.objects.filter(series_instance_uid=series_uid, study__study_instance_uid=study_uid)
            .select_related("study")
            .first()
        )
        if series is not None:
            _series.put(key, series)
    if series is None or not may_see_series(user=user, series_id=series.pk):
        raise selectors.NotVisibleError(f"series {series_uid} of study {study_uid} not found")
    return series


def series_version(series: Series) -> str:
    """Return selectors.series_version of a series (memoised briefly: one query per series, not per request)."""
    key = (_scope(), series.pk)
    version = _versions.get(key, ttl_seconds())
    if version is None:
        version = selectors.series_version(series=series)
        _versions.put(key, version)
    return version


def warm_up() -> None:
    """Compile and run this module's queries once with UIDs and keys that match nothing (server start-up)."""
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.authtoken.models import Token

    Token.objects.select_related("user").filter(key="").first()
    _memoise_series_instances("0", "0", wanted_sop_uid="0")
    list(Instance.objects.filter(series_id=0))
    Series.objects.filter(pk=0).exists()  # what the policy answers for admins and researchers
    selectors.visible_series(user=AnonymousUser()).filter(pk=0).exists()  # loads the policy


def forget_everything() -> None:
    """Drop every memoised answer (tests, and after bulk permission changes in one process)."""
    _users.clear()
    _decisions.clear()
    _instances.clear()
    _series.clear()
    _versions.clear()
