"""A request body past the size limit is answered with a JSON 413 before anything reads it.

Django checks DATA_UPLOAD_MAX_MEMORY_SIZE only where `request.body` or `request.POST` is read, and then
raises RequestDataTooBig, which becomes an HTML error page; DRF's parsers read the stream without that
check at all, and Django's ASGI handler (like the one-hop path) spools any body to disk before a view
runs. So the limit is enforced here, twice: `BodySizeMiddleware` refuses a declared Content-Length over
the limit (and a malformed one) for every Django entry (WSGI, ASGI, the test client), and `BodyLimit`
counts the bytes an ASGI client actually sends, so a chunked body without Content-Length cannot grow
without bound either. Both answer `{"detail": ...}` with status 413. The limit is
DATA_UPLOAD_MAX_MEMORY_SIZE (READERBOARD_MAX_REQUEST_BYTES). Nothing here reads or parses a body.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils.deprecation import MiddlewareMixin


def max_body_bytes() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def too_large_detail(limit: int) -> str:
    return f"The request body is larger than the {limit} bytes this server accepts."


class BodySizeMiddleware(MiddlewareMixin):
    """Answer 413 to a request declaring a body over the limit, 400 to a malformed Content-Length.

    Written as hooks (process_request), not a wrapping __call__, so the DICOMweb fast path
    (viewer/dicomweb/asgi_fast.py) can run it exactly as Django's chain does and stay on.
    """

    def process_request(self, request: HttpRequest) -> JsonResponse | None:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            size = int(declared)
        except ValueError:
            size = -1
        if size < 0:
            return JsonResponse({"detail": "The Content-Length header is not a byte count."}, status=400)
        limit = max_body_bytes()
        if size > limit:
            return JsonResponse({"detail": too_large_detail(limit)}, status=413)
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse({"detail": too_large_detail(max_body_bytes())}, status=413)
        return None


class BodyLimit:
    """ASGI wrapper: a body that grows past the limit ends as a disconnect for the app and a 413 for the client."""

    def __init__(self, app, *, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if self.max_bytes is not None else max_body_bytes()
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _send_too_large(send, limit)
            return
        received = 0
        over = False
        started = False

        async def counting_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The app stops reading as if the client had gone (Django: RequestAborted, no response).
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def watching_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, watching_send)
        if over and not started:
            await _send_too_large(send, limit)


async def _send_too_large(send, limit: int) -> None:
    body = json.dumps({"detail": too_large_detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
