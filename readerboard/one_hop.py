"""Reading API hot paths through Django's synchronous handler, in one hop to a worker thread.

Django's ASGI handler runs a sync view behind a sync middleware chain by crossing between the event
loop and a thread several times per request (the request_started signal, the middleware chain, back
to the loop for the async core, the view, back again, response.close). Each crossing waits for the
event loop, which in a reader's booth is busy serving hundreds of frames a second: measured with
`benchmarks/load/run_load.py --timing` at 200 readers, 15-20 ms per API request at p50 and ~75 ms at
p99 went to those crossings, outside the view itself.

This wrapper reads the request body on the loop, then does what Django's WSGI handler does (signals,
the same middleware in its sync form, the view, closing the response) in a single call on a thread
pool, and sends the answer back on the loop. Only the routes named in HOT_PATHS take this way; the
rest (WebSockets, streaming exports, DICOMweb) go to the wrapped application untouched.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpResponse
from django.urls import set_script_prefix

from readerboard.asgi_responses import send_whole_response

# The reading loop of every reader: sign up or in, tasks, next case, submit, me, lease renewals.
HOT_PATHS = re.compile(
    r"^/api/(signup|login|logout|me|tasks|reads|leaderboard|tasks/\d+/(next-case|upcoming-case)|cases/\d+/lease)/$"
)


class _SyncHandler(ASGIHandler):
    """Django's ASGI request parsing with the synchronous middleware chain, as its WSGI handler runs it."""

    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    def respond(self, scope: dict, body_file) -> tuple[HttpResponse, bytes]:
        """Answer one request start to finish on this thread; return the response and its body."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=ASGIHandler, scope=scope)
        request, response = self.create_request(scope, body_file)
        try:
            if request is not None:
                response = self.get_response(request)
                response._handler_class = ASGIHandler
            body = b"".join(response) if response.streaming else response.content
        finally:
            response.close()  # request_finished: database connections go back, as after any request
            body_file.close()
        return response, body


class OneHopApplication:
    """ASGI app answering HOT_PATHS in one worker-thread hop, everything else through `app`."""

    def __init__(self, app, *, threads: int) -> None:
        self.app = app
        self.threads = threads
        self._handler: _SyncHandler | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not HOT_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self._handler is None:
            self._handler = _SyncHandler()
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="one-hop")
        try:
            body_file = await self._handler.read_body(receive)
        except RequestAborted:
            return
        context = contextvars.copy_context()
        call = functools.partial(context.run, self._handler.respond, scope, body_file)
        response, body = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        await send_whole_response(response, send, body=body)


def one_hop_application(app) -> OneHopApplication:
    """Wrap `app` so the reading API's hot paths take one thread hop (a thread per pooled connection)."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    return OneHopApplication(app, threads=pool["max_size"] if isinstance(pool, dict) else 16)
