"""An ASGI fast path for the DICOMweb image and metadata reads a viewer sends one per slice.

Django's ASGI handler runs every sync view and the whole sync middleware chain on one
shared thread per process and fires request signals around it, so at 8+ concurrent
scrolling clients requests queue behind each other even when the answer is a cached
blob. This wrapper answers GET requests for frames, rendered frames, thumbnails and
instance/series metadata under /dicomweb/ itself: it resolves the URL with Django's
URLconf, runs the project's own middleware request/response hooks (except WhiteNoise,
which only serves /static/) and the very same DICOMweb view functions, with the same
authentication (viewer.dicomweb.access), access policy, negotiation, ETags, 304s and
JSON errors, on the event loop when the answer needs no database and is already in
the image cache, and on a worker thread otherwise (a decode never blocks the loop).
It must never answer differently from the Django path: anything it does not
recognise (other routes, HEAD and other methods, an unknown middleware, a middleware
short-circuit, an unexpected exception, a streaming response) goes to Django untouched.
"""

from __future__ import annotations

import functools
import io
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver, set_script_prefix
from django.utils.module_loading import import_string

from readerboard.asgi_responses import send_whole_response
from viewer.services import image_cache

logger = logging.getLogger(__name__)

# Routes of viewer/dicomweb_urls.py whose views are one lookup plus cached bytes.
FAST_ROUTES = frozenset(
    {
        "frames",
        "frames-rendered",
        "frames-thumbnail",
        "instance-rendered",
        "instance-thumbnail",
        "instance-metadata",
        "series-metadata",
        "series-thumbnail",
    }
)
# WhiteNoise only serves STATIC_URL paths and passes everything else through untouched.
PASS_THROUGH_MIDDLEWARE = frozenset({"whitenoise.middleware.WhiteNoiseMiddleware"})
# Middleware whose hooks are known to be safe to call outside Django's handler chain.
KNOWN_MIDDLEWARE = PASS_THROUGH_MIDDLEWARE | {
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Only process_exception, which the fast path never needs: an exception falls through to Django.
    "readerboard.overload.OverloadMiddleware",
    # process_request refuses an oversized or malformed Content-Length; the fast path then falls through to Django.
    "readerboard.body_limit.BodySizeMiddleware",
}


class _FallThrough(Exception):
    """The fast path cannot answer this request exactly as Django would; let Django answer it."""


def _no_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    raise AssertionError("middleware hooks are called one by one, never through get_response")


class DicomwebFastPath:
    """ASGI app answering cached DICOMweb reads directly, everything else through `django_app`."""

    def __init__(self, django_app: ASGIHandler) -> None:
        self.django_app = django_app
        self.middleware: list | None = None
        self.enabled = True

    def _load_middleware(self) -> list:
        unknown = [path for path in settings.MIDDLEWARE if path not in KNOWN_MIDDLEWARE]
        if unknown:
            logger.warning("DICOMweb fast path off: middleware %s is not known to be safe outside Django", unknown)
            self.enabled = False
        return [
            import_string(path)(_no_response) for path in settings.MIDDLEWARE if path not in PASS_THROUGH_MIDDLEWARE
        ]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or "/dicomweb/" not in scope["path"]:
            await self.django_app(scope, receive, send)
            return
        if self.middleware is None:
            self.middleware = self._load_middleware()
        match = self._match(scope) if self.enabled else None
        if match is None:
            await self.django_app(scope, receive, send)
            return
        set_script_prefix(get_script_prefix(scope))
        request, error = self.django_app.create_request(scope, io.BytesIO())
        if error is not None:
            await self.django_app(scope, receive, send)
            return
        request.resolver_match = match
        try:
            try:
                # Cached answers need no database and no decoding: serve them on the loop, no thread hop.
                with image_cache.cached_only():
                    response = self._answer(request, match, on_loop=True)
            except (SynchronousOnlyOperation, image_cache.NotCachedError):
                request, _ = self.django_app.create_request(scope, io.BytesIO())
                request.resolver_match = match
                response = await sync_to_async(self._answer, thread_sensitive=False)(request, match, on_loop=False)
        except _FallThrough:
            await self.django_app(scope, receive, send)
            return
        except Exception:  # noqa: BLE001 - Django's handler logs it and answers its own 500
            logger.debug("DICOMweb fast path passing %s to Django", scope["path"], exc_info=True)
            await self.django_app(scope, receive, send)
            return
        await send_whole_response(response, send)

    def _match(self, scope):
        path_info = scope["path"].removeprefix(get_script_prefix(scope).rstrip("/")) or "/"
        return _fast_route(path_info, get_resolver())

    def _answer(self, request: HttpRequest, match, *, on_loop: bool) -> HttpResponse:
        """Run the middleware hooks and the DICOMweb view exactly as Django's handler would."""
        if not on_loop:
            close_old_connections()  # what Django's request_started signal does
        try:
            for middleware in self.middleware:
                if hasattr(middleware, "process_request") and middleware.process_request(request) is not None:
                    raise _FallThrough
            for middleware in self.middleware:
                process_view = getattr(middleware, "process_view", None)
                if process_view and process_view(request, match.func, match.args, match.kwargs) is not None:
                    raise _FallThrough
            response = match.func(request, *match.args, **match.kwargs)
            if response.streaming or getattr(response, "render", None) is not None:
                raise _FallThrough
            for middleware in reversed(self.middleware):
                if hasattr(middleware, "process_response"):
                    response = middleware.process_response(request, response)
            return response
        finally:
            if not on_loop:
                close_old_connections()  # what Django's request_finished signal does


@functools.lru_cache(maxsize=8192)
def _fast_route(path_info: str, resolver):
    """Return the URLconf match of a fast-path route, or None (memoised: a viewer repeats URLs)."""
    try:
        match = resolver.resolve(path_info)
    except Resolver404:
        return None
    if match.namespace != "dicomweb" or match.url_name not in FAST_ROUTES:
        return None
    return match


def fast_path_application(django_app: ASGIHandler) -> DicomwebFastPath:
    """Return the ASGI app that serves cached DICOMweb reads fast and hands the rest to Django."""
    return DicomwebFastPath(django_app)
