"""Readerboard's ASGI application with server-side timing, for load diagnosis (`run_load.py --timing`).

For every HTTP request it records when the process started on it, how long until the answer's last
byte was handed to the server, the endpoint (named as the load generator names it) and the status;
a background task measures the event loop's lag (how late a 10 ms sleep wakes up), which is the
time any request arriving then waits before the process even looks at it. Lines of JSON go to
`$READERBOARD_TIMING_DIR/timing-<pid>.jsonl`, flushed every second.

Comparing these server times with the client's tells where a slow answer waited: inside the process
(views, database, the GIL) or before it (the listen queue, a blocked event loop, the load generator).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

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
