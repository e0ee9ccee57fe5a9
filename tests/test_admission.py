"""Admission control: past the in-flight bound a request is refused at the door with 503 + Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import json

from readerboard.admission import AdmissionLimit


class SlowApp:
    """An ASGI app that answers 200 once `release` is set, counting the requests it saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen = 0

    async def __call__(self, scope, receive, send) -> None:
        self.seen += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path: str = "/api/tasks/") -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
    return sent


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_request_beyond_the_bound_is_answered_503_with_retry_after_and_never_reaches_the_app():
    async def scenario():
        inner = SlowApp()
        limited = AdmissionLimit(inner, max_in_flight=2, retry_after_s=5)
        first = asyncio.create_task(call(limited))
        second = asyncio.create_task(call(limited))
        await asyncio.sleep(0)  # both are now inside the app
        refused = await call(limited)
        inner.release.set()
        return inner.seen, refused, await first, await second, limited

    seen, refused, first, second, limited = run(scenario())

    assert seen == 2
    start, body = refused
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"5"
    assert json.loads(body["body"])["detail"].startswith("The server is busy")
    assert first[0]["status"] == second[0]["status"] == 200
    assert limited.refused == 1
    assert limited.in_flight == 0


def test_requests_are_admitted_again_once_earlier_ones_are_answered():
    async def scenario():
        inner = SlowApp()
        limited = AdmissionLimit(inner, max_in_flight=1, retry_after_s=5)
        inner.release.set()
        return [await call(limited) for _ in range(3)], inner.seen

    answers, seen = run(scenario())

    assert [answer[0]["status"] for answer in answers] == [200, 200, 200]
    assert seen == 3


def test_health_checks_are_always_admitted_so_a_busy_box_is_not_restarted():
    async def scenario():
        inner = SlowApp()
        limited = AdmissionLimit(inner, max_in_flight=1, retry_after_s=5)
        blocked = asyncio.create_task(call(limited))
        await asyncio.sleep(0)
        health = asyncio.create_task(call(limited, "/healthz"))
        await asyncio.sleep(0)
        inner.release.set()
        return await health, await blocked

    health, blocked = run(scenario())

    assert health[0]["status"] == 200
    assert blocked[0]["status"] == 200


def test_an_app_that_fails_still_frees_its_place():
    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    async def scenario():
        limited = AdmissionLimit(failing, max_in_flight=1, retry_after_s=5)
        for _ in range(2):
            with contextlib.suppress(RuntimeError):
                await call(limited)
        return limited

    limited = run(scenario())

    assert limited.in_flight == 0
    assert limited.refused == 0


def test_a_bound_of_zero_admits_everything():
    async def scenario():
        inner = SlowApp()
        limited = AdmissionLimit(inner, max_in_flight=0, retry_after_s=5)
        calls = [asyncio.create_task(call(limited)) for _ in range(5)]
        await asyncio.sleep(0)
        inner.release.set()
        return [await task for task in calls]

    answers = run(scenario())

    assert all(answer[0]["status"] == 200 for answer in answers)
