"""`/healthz`: is this web process able to serve, i.e. can it reach its database (and Redis when configured)?

Used by container health checks and load balancers, so it answers without a login, without
sessions and quickly (each probe has a short timeout). It must never reveal configuration:
a failed check reports the exception's class name only, never a host, user or message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

REDIS_TIMEOUT_S = 2.0


def check_database() -> None:
    """Run `SELECT 1` on the default database; raise on any failure."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("unexpected answer to SELECT 1")


def check_redis() -> None:
    """PING the Redis that carries the Celery broker and the channel layer; raise on any failure."""
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )
    try:
        if not client.ping():
            raise RuntimeError("Redis did not answer PING")
    finally:
        client.close()


def run_checks() -> dict[str, dict[str, object]]:
    """Return each configured check's outcome: {"ok": bool, "ms": float, "error"?: class name}."""
    checks: dict[str, Callable[[], None]] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    outcomes: dict[str, dict[str, object]] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # a probe reports any failure rather than raising a 500
            outcomes[name] = {"ok": False, "error": type(exc).__name__}
        else:
            outcomes[name] = {"ok": True}
        outcomes[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return outcomes


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 {"status": "ok", "checks": {...}} when every check passes, else 503 with "status": "unavailable"."""
    checks = run_checks()
    healthy = all(outcome["ok"] for outcome in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
