"""`/healthz`: the probe load balancers and container health checks call."""

from __future__ import annotations

import pytest
from django.db import connections


@pytest.mark.django_db
def test_healthz_answers_ok_without_login_when_the_database_answers(client, settings):
    settings.REDIS_URL = ""

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["database"]["ok"] is True
    assert "redis" not in response.json()["checks"]
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_unavailable_when_redis_is_configured_but_unreachable(client, settings):
    settings.REDIS_URL = "redis://secret-user:secret-pw@127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError", "ms": body["checks"]["redis"]["ms"]}
    assert "secret" not in response.content.decode()


@pytest.mark.django_db
def test_healthz_is_unavailable_when_the_database_fails(client, settings, monkeypatch):
    settings.REDIS_URL = ""

    def broken_cursor(*args, **kwargs):
        raise connections["default"].Database.OperationalError("could not connect to server db.internal")

    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
    assert "db.internal" not in response.content.decode()


@pytest.mark.redis
@pytest.mark.django_db
def test_healthz_pings_the_configured_redis(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"]["redis"]["ok"] is True


def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405
