"""Readerboard's ASGI application with server-side timing, for load diagnosis (`run_load.py --timing`).

For every HTTP request it records when the process started on it, how long until the answer's last
byte was handed to the server, the endpoint (named as the load generator names it) and the status;
a background task measures the event loop's lag (how late a 10 ms sleep wakes up), which is the
time any request arriving then waits before the process even looks at it. Lines of JSON go to
`$READERBOARD_TIMING_DIR/timing-<pid>.jsonl`, flushed every second.

Comparing these server times with the client's tells where a slow answer waited: inside the process
(views, database, the GIL) or before it (the listen queue, a blocked event loop, the load generator).
Inside a view (DRF's dispatch, on its worker thread) it also records the thread's own CPU time and the
wall time spent in database calls, so what is left is waiting: for the GIL, a core, or a pool connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

from django.db import connection
from rest_framework.views import APIView

from readerboard.asgi import application as readerboard_application

# Endpoint names as benchmarks/load/locustfile.py reports them.
ENDPOINTS = (
    (re.compile(r"^/dicomweb/.*/frames/"), "/dicomweb/.../instances/[uid]/frames/1"),
    (re.compile(r"^/dicomweb/.*/series/[^/]+/metadata$"), "/dicomweb/.../series/[uid]/metadata"),
    (re.compile(r"^/api/tasks/\d+/next-case/$"), "/api/tasks/[id]/next-case/"),
    (re.compile(r"^/api/tasks/$"), "/api/tasks/"),
    (re.compile(r"^/api/reads/$"), "/api/reads/"),
    (re.compile(r"^/api/signup/$"), "/api/signup/"),
)
LAG_PERIOD_S = 0.010


def endpoint_of(path: str) -> str:
    for pattern, name in ENDPOINTS:
        if pattern.search(path):
            return name
    return "other"


def _timed_dispatch(sink: TimedApplication):
    original = APIView.dispatch

    def dispatch(view, request, *args, **kwargs):
        database = {"ms": 0.0, "queries": 0}

        def timed_query(execute, sql, params, many, context):
            before = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                database["ms"] += (time.perf_counter() - before) * 1000
                database["queries"] += 1

        wall, cpu = time.perf_counter(), time.thread_time()
        with connection.execute_wrapper(timed_query):
            response = original(view, request, *args, **kwargs)
        sink.records.append(
            {
                "kind": "view",
                "endpoint": endpoint_of(request.path),
                "t": time.monotonic(),
                "ms": round((time.perf_counter() - wall) * 1000, 3),
                "cpu_ms": round((time.thread_time() - cpu) * 1000, 3),
                "db_ms": round(database["ms"], 3),
                "queries": database["queries"],
            }
        )
        return response

    return dispatch


class TimedApplication:
    def __init__(self, app, out_dir: Path) -> None:
        self.app = app
        self.out_dir = out_dir
        self.records: list[dict] = []
        self.started_background = False

    def _start_background(self) -> None:
        self.started_background = True
        loop = asyncio.get_running_loop()
        loop.create_task(self._measure_lag())
        loop.create_task(self._flush_every_second())

    async def _measure_lag(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_PERIOD_S)
            lag_ms = (time.monotonic() - before - LAG_PERIOD_S) * 1000
            self.records.append({"kind": "lag", "t": before, "ms": round(lag_ms, 3)})

    async def _flush_every_second(self) -> None:
        path = self.out_dir / f"timing-{os.getpid()}.jsonl"
        while True:
            await asyncio.sleep(1.0)
            records, self.records = self.records, []
            if records:
                with path.open("a") as out:
                    out.writelines(json.dumps(record) + "\n" for record in records)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.started_background:
            self._start_background()
        started = time.monotonic()
        status = {"code": 0}

        async def timed_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.records.append(
                    {
                        "kind": "request",
                        "endpoint": endpoint_of(scope["path"]),
                        "t": started,
                        "ms": round((time.monotonic() - started) * 1000, 3),
                        "status": status["code"],
                    }
                )

        await self.app(scope, receive, timed_send)


application = TimedApplication(readerboard_application, Path(os.environ.get("READERBOARD_TIMING_DIR", ".")))
APIView.dispatch = _timed_dispatch(application)
