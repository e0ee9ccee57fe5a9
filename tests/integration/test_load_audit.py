"""The load runner in a reduced, bounded form: 20 readers for 30 s, and its audit must pass with no errors.

Same code path as the full run (benchmarks/load/run_load.py: fresh PostgreSQL database, private
redis-server, two uvicorn processes as deployed, a Celery worker, locust headless), so the audit itself is
exercised in CI: fewer read slots than readers want makes them compete for the last reads of
each case, where a double count or a lost submit would show.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

pytestmark = [pytest.mark.services, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(300)]


def test_twenty_readers_for_thirty_seconds_lose_no_acknowledged_read_and_overfill_no_case():
    # Locust runs in its own process; importing it here would monkey-patch this one with gevent.
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed")
    psycopg = pytest.importorskip("psycopg")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    from benchmarks.load.run_load import run_load
    from tests.integration.processes import POSTGRES_ADMIN_URL

    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")

    result = run_load(
        users=20,
        spawn_rate=10,
        duration_s=30,
        web=2,
        cases=3,
        reads_per_case=2,
        rows=64,
        slices=20,
        series=3,
        frames=10,
        pace="stress",  # reads within the 30 s, not a minute each
        log=lambda *_: None,
    )

    audit = result["audit"]
    assert audit["passed"], audit["problems"]
    assert result["error_rate"] == 0, result["failure_examples"]
    assert result["acknowledged_reads"] == audit["stored_reads"] > 0
    # Readers wanted more reads than the task had room for, so the read target was really contended.
    assert audit["cases_at_target"] == 3, (audit, result["endpoints"])
    assert result["consensus_settled_s"] is not None, "Celery never caught up with the reads"
