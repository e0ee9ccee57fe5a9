"""Sending a finished Django response over ASGI in one body message (shared by the ASGI fast paths)."""

from __future__ import annotations

from django.http import HttpResponse


async def send_whole_response(response: HttpResponse, send, *, body: bytes | None = None) -> None:
    """Send a response's status, headers, cookies and body (`body`, else its content) as Django would.

    One body message, not Django's 64 KiB pieces: a 512x512 frame would otherwise wait for the socket
    to drain eight times, interleaving badly with other clients.
    """
    headers = [
        (name.encode("ascii"), value.encode("latin1") if isinstance(value, str) else bytes(value))
        for name, value in response.items()
    ]
    headers += [
        (b"Set-Cookie", cookie.output(header="").encode("ascii").strip()) for cookie in response.cookies.values()
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content if body is None else body, "more_body": False})
