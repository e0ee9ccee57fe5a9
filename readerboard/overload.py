"""Past saturation, say so: a request that waited its turn for a database connection in vain gets 503.

The per-process connection pool (READERBOARD_DB_POOL_MAX, READERBOARD_DB_POOL_TIMEOUT_S) bounds the
work a burst can start; a request still waiting when the timeout ends was never run, so the honest
answer is "busy, retry" (503 with Retry-After), which the reading page and the offline queue retry,
and never a 500. Nothing here may turn any other error into a 503.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

RETRY_AFTER_S = 5


def is_pool_timeout(exception: BaseException) -> bool:
    """Return True when the exception (or one it was raised from) is psycopg_pool's PoolTimeout."""
    seen: BaseException | None = exception
    for _ in range(5):  # Django wraps the driver's error once; a few levels is plenty
        if seen is None:
            return False
        if type(seen).__name__ == "PoolTimeout" and type(seen).__module__.startswith("psycopg_pool"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class OverloadMiddleware:
    """Answer 503 + Retry-After to a request that timed out waiting for a pooled database connection."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not is_pool_timeout(exception):
            return None
        response = JsonResponse({"detail": "The server is busy. Try again in a few seconds."}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
