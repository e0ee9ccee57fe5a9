"""Each server process warms up through the ASGI lifespan protocol, and a database problem never stops it."""

from __future__ import annotations

import asyncio

import pytest
from django.db import DatabaseError

from readerboard import lifespan
from readerboard.asgi import application


def run_lifespan(app) -> list[dict]:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    return sent


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_warms_up_and_completes_the_lifespan():
    assert run_lifespan(application) == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


@pytest.mark.django_db
def test_warm_up_runs_the_hot_lookups_against_the_database(django_assert_num_queries):
    with django_assert_num_queries(4):
        lifespan.warm_up()


def test_a_database_that_is_not_ready_only_skips_the_warm_up(monkeypatch):
    from viewer.dicomweb import access

    def not_migrated():
        raise DatabaseError("no such table: authtoken_token")

    monkeypatch.setattr(access, "warm_up", not_migrated)
    assert run_lifespan(lifespan.lifespan_application)[0] == {"type": "lifespan.startup.complete"}
