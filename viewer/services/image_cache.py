"""A tiered byte cache for decoded frames, rendered images and metadata documents.

Entries are immutable (they are keyed by UIDs and request parameters, and UIDs never
change content), so the cache never needs invalidation, only eviction. Tiers, fastest
first: a bounded in-process LRU, the shared Django cache when Redis is configured
(so several server processes share one decode), and files under
`settings.DATA_DIR/cache/` that survive restarts. It must never store anything that
depends on who is asking: access control happens before a lookup, not inside it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from django.conf import settings
from django.core.cache import cache as django_cache

logger = logging.getLogger(__name__)

PROCESS_CACHE_BYTES = 256 * 1024 * 1024
# Redis values above this size go to disk only: one big GET costs more than a page-cache read.
SHARED_CACHE_MAX_BYTES = 2 * 1024 * 1024
SHARED_CACHE_SECONDS = 7 * 24 * 3600


class _ProcessLRU:
    """A thread-safe LRU of bytes values bounded by total size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 8:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._size -= len(previous)
            self._entries[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted)

    def discard(self, key: str) -> None:
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._size -= len(previous)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0


_process_cache = _ProcessLRU(PROCESS_CACHE_BYTES)
_cached_only: ContextVar[bool] = ContextVar("image_cache_cached_only", default=False)


class NotCachedError(Exception):
    """Raised inside `cached_only()` where a value would have to be built (decoded, rendered, read)."""


@contextmanager
def cached_only() -> Iterator[None]:
    """Within this block, get_or_build raises NotCachedError instead of building on a miss.

    The ASGI fast path answers on its event loop only what is already cached; a miss
    means a decode, which it then runs on a worker thread instead of blocking the loop.
    """
    token = _cached_only.set(True)
    try:
        yield
    finally:
        _cached_only.reset(token)


def cache_dir() -> Path:
    """Return the folder of the on-disk cache (under the data dir)."""
    return Path(settings.DATA_DIR) / "cache"


def _namespaced(kind: str, key: str) -> str:
    # The data dir is part of the key so two stores served by one process (tests) never mix.
    return f"{settings.DATA_DIR}|{kind}|{key}"


def _disk_path(kind: str, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return cache_dir() / kind / digest[:2] / digest


def _shared_enabled() -> bool:
    return bool(getattr(settings, "REDIS_URL", ""))


def get(kind: str, key: str) -> bytes | None:
    """Return a cached value, promoting it to the faster tiers, or None."""
    name = _namespaced(kind, key)
    value = _process_cache.get(name)
    if value is not None:
        return value
    if _shared_enabled():
        try:
            value = django_cache.get("img:" + hashlib.sha256(name.encode()).hexdigest())
        except Exception:  # noqa: BLE001 - a cache outage must only make things slower
            logger.warning("shared image cache unavailable", exc_info=True)
            value = None
        if value is not None:
            _process_cache.put(name, value)
            return value
    path = _disk_path(kind, key)
    try:
        value = path.read_bytes()
    except FileNotFoundError:
        return None
    _process_cache.put(name, value)
    return value


def put(kind: str, key: str, value: bytes, *, persist: bool = True) -> None:
    """Store a value in every tier, or only in this process's memory when `persist` is false."""
    name = _namespaced(kind, key)
    _process_cache.put(name, value)
    if not persist:
        return
    if _shared_enabled() and len(value) <= SHARED_CACHE_MAX_BYTES:
        try:
            django_cache.set("img:" + hashlib.sha256(name.encode()).hexdigest(), value, SHARED_CACHE_SECONDS)
        except Exception:  # noqa: BLE001
            logger.warning("shared image cache unavailable", exc_info=True)
    path = _disk_path(kind, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees half a file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    partial.write_bytes(value)
    os.replace(partial, path)


def get_or_build(
    kind: str, key: str, build: Callable[[], bytes], *, persist: bool = True, build_is_a_file_read: bool = False
) -> tuple[bytes, bool]:
    """Return (value, was_cached), building and storing the value on a miss.

    `persist=False` keeps a value that is cheaper to rebuild than to write (a frame sliced
    straight from an uncompressed file) out of the shared and disk tiers.
    `build_is_a_file_read=True` says the build only reads a local file, as a disk-tier hit
    does, so it may run even inside `cached_only()`.
    """
    value = get(kind, key)
    if value is not None:
        return value, True
    if _cached_only.get() and not build_is_a_file_read:
        raise NotCachedError(f"{kind} {key} is not cached")
    value = build()
    put(kind, key, value, persist=persist)
    return value, False


def is_cached_only() -> bool:
    """Return whether the caller is inside `cached_only()` (and so must not build values)."""
    return _cached_only.get()


def discard(kind: str, key: str) -> None:
    """Forget a value in every tier (a damaged entry that is about to be rebuilt)."""
    name = _namespaced(kind, key)
    _process_cache.discard(name)
    if _shared_enabled():
        try:
            django_cache.delete("img:" + hashlib.sha256(name.encode()).hexdigest())
        except Exception:  # noqa: BLE001
            logger.warning("shared image cache unavailable", exc_info=True)
    _disk_path(kind, key).unlink(missing_ok=True)


def contains(kind: str, key: str) -> bool:
    """Return whether a value is cached on disk (the tier that survives restarts)."""
    return _disk_path(kind, key).exists()


def clear_process_cache() -> None:
    """Forget the in-process tier (tests and benchmarks measuring cold paths)."""
    _process_cache.clear()
