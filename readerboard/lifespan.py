"""ASGI lifespan: each server process warms up before it takes traffic.

The first image request a process answers compiles its ORM queries and loads the access
policy, which cost about 50 ms; under a burst of first requests (a booth opening, a
restart) every one of them waited behind that. At start-up each process now runs the
lookups of the DICOMweb hot path once, with keys that match nothing, on a worker thread.
A database that is not reachable or not migrated yet, or any other failure, only skips
the warm-up (and is logged): it must never keep a server from starting.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Run the image-serving lookups once with keys that match nothing."""
    from viewer.dicomweb import access

    try:
        access.warm_up()
    except DatabaseError:
        logger.info("start-up warm-up skipped: the database is not ready", exc_info=True)
    except Exception:  # noqa: BLE001 - a warm-up is an optimisation, never a reason not to serve
        logger.warning("start-up warm-up failed", exc_info=True)
    finally:
        close_old_connections()


async def lifespan_application(scope, receive, send) -> None:
    """Answer the ASGI lifespan protocol: warm up on start-up, nothing to release on shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await sync_to_async(warm_up, thread_sensitive=False)()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
