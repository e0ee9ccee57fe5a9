"""Work a request hands off once its transaction has committed, so the response never waits for Redis.

Queuing a Celery task and broadcasting the leaderboard are network round trips (and, with Redis down,
a 2 s timeout each); a submit's answer should not carry them. With a broker (REDIS_URL set) they run on
one small thread pool per process; work with the same `coalesce_key` that is still
waiting runs once (twenty submits in a burst cause one leaderboard broadcast, not twenty). Without a broker
(the booth laptop and the unit tests, where Celery runs eagerly) they run inline, as before.

Nothing here may be the only record of anything: a process that dies with work still queued loses
only messages the consensus sweep (Celery beat) recomputes and a broadcast the next read repeats.
This module must never run work before the transaction that asked for it has committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections, transaction

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pending: set[str] = set()
_executor: ThreadPoolExecutor | None = None


def runs_in_background() -> bool:
    """Return True when handed-off work runs on the background pool (a real broker), False when inline."""
    configured = settings.READERBOARD.get("AFTER_COMMIT_IN_BACKGROUND")
    if configured is not None:
        return bool(configured)
    return not settings.CELERY_TASK_ALWAYS_EAGER


def on_commit_soon(work: Callable[[], None], *, coalesce_key: str | None = None) -> None:
    """Run `work` after the current transaction commits: on the background pool, or inline without a broker."""
    transaction.on_commit(lambda: run_soon(work, coalesce_key=coalesce_key), robust=True)


def run_soon(work: Callable[[], None], *, coalesce_key: str | None = None) -> None:
    """Run `work` now (inline mode) or on the background pool; a waiting `coalesce_key` is not queued twice."""
    if not runs_in_background():
        work()
        return
    if coalesce_key is not None:
        with _lock:
            if coalesce_key in _pending:
                return
            _pending.add(coalesce_key)
    _pool().submit(_run, work, coalesce_key)


def _run(work: Callable[[], None], coalesce_key: str | None) -> None:
    if coalesce_key is not None:
        # Cleared before running, so a commit that happens during this run queues one more run.
        with _lock:
            _pending.discard(coalesce_key)
    try:
        work()
    except Exception:  # logged, never raised into a pool nobody waits on
        logger.exception("background work after commit failed")
    finally:
        # This thread's connections go back to the pool (or are closed) between jobs.
        connections.close_all()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=int(settings.READERBOARD.get("AFTER_COMMIT_THREADS", 2)),
                thread_name_prefix="readerboard-after-commit",
            )
        return _executor
