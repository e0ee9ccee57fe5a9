#!/usr/bin/env python3
"""Run by the container entry point before a role starts: exit 0 when the settings load and the database
and Redis answer, 78 (EX_CONFIG) on a configuration that must not start, 69 (EX_UNAVAILABLE) when a
service stays unreachable for READERBOARD_WAIT_S seconds.

- Configuration: loading readerboard.settings applies every production rule (a strong SECRET_KEY,
  ALLOWED_HOSTS, no DEBUG); a refusal is printed as one line naming the variable, not a traceback.
- Services: a container started before PostgreSQL or Redis is ready waits, printing one line per attempt,
  instead of crashing and being restarted in a loop.
"""

from __future__ import annotations

import os
import sys
import time

EX_UNAVAILABLE = 69
EX_CONFIG = 78
RETRY_S = 2.0


def log(message: str) -> None:
    print(f"readerboard-preflight: {message}", file=sys.stderr, flush=True)


def load_settings() -> bool:
    """Import Django's settings; print why and return False when they refuse this configuration."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        log(f"refusing to start: {exc}")
        return False
    return True


def database_error() -> str | None:
    """None when the default database answers SELECT 1, else a one-line reason without the password."""
    from django.db import connections

    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any failure is a reason to wait
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        connection.close()


def redis_error() -> str | None:
    from django.conf import settings

    if not settings.REDIS_URL:
        return None
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def describe_database() -> str:
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "sqlite" in database["ENGINE"]:
        return f"SQLite {database['NAME']}"
    return f"PostgreSQL {database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}/{database['NAME']}"


def wait_for(what: str, probe, deadline: float) -> bool:
    attempt = 0
    while True:
        attempt += 1
        error = probe()
        if error is None:
            if attempt > 1:
                log(f"{what} is ready")
            return True
        if time.monotonic() >= deadline:
            log(f"giving up: {what} is still unreachable after {attempt} attempts ({error})")
            return False
        log(f"waiting for {what} (attempt {attempt}, retrying in {RETRY_S:.0f} s): {error}")
        time.sleep(RETRY_S)


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")
    # The code is in the working directory (/app), as for manage.py; this script lives elsewhere.
    sys.path.insert(0, os.getcwd())
    # One plain connection per attempt: a pool would hold the first attempt for its whole timeout.
    os.environ["READERBOARD_DB_POOL_MAX"] = "0"
    if not load_settings():
        return EX_CONFIG
    deadline = time.monotonic() + float(os.environ.get("READERBOARD_WAIT_S", "300"))
    if not wait_for(describe_database(), database_error, deadline):
        return EX_UNAVAILABLE
    if not wait_for("Redis", redis_error, deadline):
        return EX_UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
