"""After-commit work: inline without a broker, on the pool with one, never before the commit, coalesced."""

from __future__ import annotations

import threading

import pytest

from annotations import background


@pytest.fixture
def in_background(settings):
    settings.READERBOARD = {**settings.READERBOARD, "AFTER_COMMIT_IN_BACKGROUND": True}


@pytest.mark.django_db
def test_without_a_broker_work_runs_inline_after_the_commit(django_capture_on_commit_callbacks):
    ran: list[str] = []

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        background.on_commit_soon(lambda: ran.append("queued"))
        assert ran == []

    assert callbacks and ran == ["queued"]


@pytest.mark.django_db
def test_with_a_broker_the_request_thread_does_not_wait_for_the_work(in_background, django_capture_on_commit_callbacks):
    release, done = threading.Event(), threading.Event()
    threads: list[str] = []

    def slow_enqueue() -> None:
        threads.append(threading.current_thread().name)
        release.wait(10)
        done.set()

    with django_capture_on_commit_callbacks(execute=True):
        background.on_commit_soon(slow_enqueue)
    returned_before_the_work_finished = not done.is_set()
    release.set()

    assert returned_before_the_work_finished
    assert done.wait(10) and threads[0].startswith("readerboard-after-commit")


def test_waiting_work_with_the_same_key_runs_once(in_background):
    gate, started, finished = threading.Event(), threading.Event(), threading.Event()
    runs: list[str] = []

    def blocker() -> None:
        started.set()
        gate.wait(10)

    def broadcast() -> None:
        runs.append("broadcast")
        finished.set()

    # Occupy every pool thread, then queue the same broadcast three times while it waits.
    for _ in range(4):
        background.run_soon(blocker)
    started.wait(10)
    for _ in range(3):
        background.run_soon(broadcast, coalesce_key="test-broadcast")
    gate.set()
    finished.wait(10)

    assert runs == ["broadcast"]
