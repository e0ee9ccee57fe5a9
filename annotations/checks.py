"""System checks of the deployment that Django's own `check --deploy` does not know about.

Sign-in attempt limits (annotations.booth.sign_in_limits) count guesses with atomic `add`/`incr` in the
default cache; they hold only when every web process shares that cache and its increments are atomic.
This module only inspects settings; it must never connect to anything.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

# Cache backends whose counters every process sees and whose incr is atomic on the server.
SHARED_ATOMIC_CACHES = frozenset(
    {
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "django.core.cache.backends.memcached.PyLibMCCache",
        "django_redis.cache.RedisCache",
    }
)


@register(Tags.security, Tags.caches, deploy=True)
def check_shared_cache_for_sign_in_limits(app_configs, **kwargs) -> list[Error]:
    """In production, refuse a default cache that is per process (locmem) or not atomic (database, files)."""
    if not getattr(settings, "PRODUCTION", False):
        return []
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend in SHARED_ATOMIC_CACHES:
        return []
    return [
        Error(
            f"The default cache ({backend or 'none'}) is not shared by all server processes with atomic "
            "counters, so sign-in attempt limits would be counted per process (each process would allow its "
            "own guesses against every PIN).",
            hint="Set REDIS_URL (the cache then is Redis) for READERBOARD_PRODUCTION=1; see docs/security.md.",
            id="readerboard.E001",
        )
    ]
