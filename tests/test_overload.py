"""Past saturation: a request that timed out waiting for a database connection is a 503 with Retry-After."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import RequestFactory

from readerboard.overload import OverloadMiddleware, is_pool_timeout

psycopg_pool = pytest.importorskip("psycopg_pool")


def wrapped_pool_timeout() -> OperationalError:
    """The error Django raises when the pool's getconn() times out (the driver's error as the cause)."""
    try:
        try:
            raise psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec")
        except psycopg_pool.PoolTimeout as timeout:
            raise OperationalError(str(timeout)) from timeout
    except OperationalError as error:
        return error


def test_a_pool_timeout_is_answered_503_with_retry_after():
    middleware = OverloadMiddleware(lambda request: None)

    response = middleware.process_exception(RequestFactory().post("/api/reads/"), wrapped_pool_timeout())

    assert response.status_code == 503 and int(response["Retry-After"]) > 0


def test_other_database_errors_are_left_alone():
    middleware = OverloadMiddleware(lambda request: None)

    assert middleware.process_exception(RequestFactory().get("/"), OperationalError("disk full")) is None
    assert not is_pool_timeout(ValueError("nope"))
