"""Calls released at the same instant from threads, as simultaneous requests reach a server's threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
from django.db import connection, connections

T = TypeVar("T")


def require_postgresql() -> None:
    """Skip the calling test unless the test database is PostgreSQL (SQLite serialises every writer)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")


def run_at_once(jobs: Sequence[Callable[[], T]], *, timeout_s: float = 60) -> list[T | BaseException]:
    """Run each job on its own thread and database connection, all released together by one barrier.

    Returns each job's result, or the exception it raised, in the jobs' order: a thread must not die silently.
    """
    barrier = threading.Barrier(len(jobs))
    outcomes: list[T | BaseException | None] = [None] * len(jobs)

    def run(index: int, job: Callable[[], T]) -> None:
        try:
            barrier.wait()
            outcomes[index] = job()
        except BaseException as exc:
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, job)) for index, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    still_running = sum(thread.is_alive() for thread in threads)
    assert not still_running, f"{still_running} of {len(jobs)} calls still running after {timeout_s} s"
    return outcomes  # type: ignore[return-value]


def exceptions_in(outcomes: Sequence[object]) -> list[BaseException]:
    """The outcomes of run_at_once that are exceptions."""
    return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
