"""Past saturation, refuse at the door: a server process admits a bounded number of HTTP requests at once.

Every request a process has accepted but not answered holds memory, a thread and (for most views) a
database connection or a place in the queue for one. Past the knee, letting more in only makes every
reader wait longer until clients time out and resubmit. Instead, beyond READERBOARD_MAX_REQUESTS_IN_FLIGHT
requests in progress in this process, a new one is answered at once with 503 and Retry-After, before
Django or the database see it: nothing was started, so retrying loses nothing (the reading page and its
offline outbox retry after the delay; a submit carries its client_uuid, so a retry stores one read).
Health checks are always admitted, so an orchestrator does not restart a box that is merely busy.
"""

from __future__ import annotations

import json

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
BUSY_BODY = json.dumps({"detail": "The server is busy. Try again in a few seconds."}).encode()


class AdmissionLimit:
    """ASGI wrapper answering 503 + Retry-After when `max_in_flight` HTTP requests are already in progress."""

    def __init__(self, app, *, max_in_flight: int, retry_after_s: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.max_in_flight <= 0 or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.refused += 1
            await self._busy(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _busy(self, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(BUSY_BODY)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": BUSY_BODY})
