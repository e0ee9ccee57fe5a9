"""Scale-out on one machine: two ASGI servers and two Celery workers from the same code, sharing PostgreSQL and Redis.

The test creates its own PostgreSQL database and claims an empty Redis database number, migrates,
seeds two small synthetic CT cases, then starts on loopback two Daphne processes (each on a socket
this process bound to port 0 and hands over with --fd, so no port is ever guessed) and two Celery
workers that split the queues (A: default + consensus, B: import + images + export). Two readers
read both cases, every request alternating between the two web processes, while a leaderboard
WebSocket held open on web A must see each submit made through web B. Consensus must be computed by
worker A and a CSV export, requested through the API, by worker B. Everything it started or
created is stopped and dropped afterwards, also on failure.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.integration.processes import (
    POSTGRES_ADMIN_URL,
    PYTHON,
    REDIS_SERVER_URL,
    SCRUBBED,
    Deployment,
    LeaderboardSocket,
    ReaderClient,
    line_read_document,
    loopback_session,
    sql_rows,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(420)]

REDIS_CLAIM_KEY = "readerboard:scale-out-test:claim"
WORKER_A_QUEUES = "default,consensus"
WORKER_B_QUEUES = "import,images,export"
READS_PER_CASE = 2


# --- harness: databases ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test module; dropped (with its connections) afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    name = f"rb_scaleout_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """The URL of an empty Redis database number claimed for this test; flushed afterwards."""
    redis = pytest.importorskip("redis")
    probe = redis.Redis.from_url(REDIS_SERVER_URL + "/0", socket_connect_timeout=3)
    try:
        probe.ping()
        databases = int(probe.config_get("databases").get("databases", 16))
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_SERVER_URL}: {exc}")
    finally:
        probe.close()
    # Other test runs use low numbers and the default 0; take the highest empty one, and claim it
    # atomically so a parallel run of this test takes another.
    for number in range(databases - 1, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_SERVER_URL}/{number}")
        if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, os.getpid(), nx=True, ex=1800):
            break
        client.close()
    else:
        pytest.skip("no empty Redis database number to claim")
    try:
        yield f"{REDIS_SERVER_URL}/{number}"
    finally:
        client.flushdb()
        client.close()


# --- harness: processes ------------------------------------------------------------------------


SEED_SCRIPT = r"""
import json, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from annotations.models import Case, Task
from annotations.booth.roles import RESEARCHER, ensure_role_groups, grant_role
from viewer.models import Instance, Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series

reads_per_case = int(sys.argv[1])
ensure_role_groups()
task = Task.objects.create(name="Scale-out study", reads_per_case=reads_per_case,
                           tools=["long_axis", "bidirectional", "no_lesion", "skip"])
cases = []
for number, center in enumerate([(-8.0, 6.0, 0.0), (10.0, -4.0, 0.0)], start=1):
    lesion = SyntheticLesion(center_mm=center, diameters_mm=(16.0, 10.0, 12.0))
    patient = SyntheticPatient(patient_id=f"RB-SCALE-{number}", patient_name="Scale^Out", lesions=[lesion],
                               rows=64, columns=64, slices=9, pixel_spacing_mm=1.0, slice_spacing_mm=2.5, seed=number)
    written = write_series(patient, settings.DATA_DIR / "seed" / patient.patient_id)
    import_paths(written.files, collection_name="Scale-out")
    series = Series.objects.get(series_instance_uid=written.series_instance_uid)
    case = Case.objects.create(task=task, series=series, label=f"Scale-out case {number}")
    # The lesion's middle slice and its centre in image coordinates (axial, identity orientation).
    instance = min(Instance.objects.filter(series=series), key=lambda i: abs(i.image_position_patient[2] - center[2]))
    assert [round(v) for v in instance.image_orientation_patient] == [1, 0, 0, 0, 1, 0]
    row_mm, col_mm = instance.pixel_spacing_mm
    x0, y0 = instance.image_position_patient[:2]
    cases.append({"id": case.pk, "sop_instance_uid": instance.sop_instance_uid,
                  "center": [(center[0] - x0) / col_mm, (center[1] - y0) / row_mm], "column_mm": col_mm})
researcher = get_user_model().objects.create_user(username="scale-researcher", password=None)
grant_role(researcher, RESEARCHER)
print(json.dumps({"task": task.pk, "cases": cases, "researcher_token": Token.objects.create(user=researcher).key}))
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_url: str, redis_url: str) -> Iterator[Deployment]:
    """The migrated, seeded database with two web processes and two workers running against it."""
    base = tmp_path_factory.mktemp("scale-out")
    env = {
        key: value for key, value in os.environ.items() if key not in SCRUBBED and not key.startswith("READERBOARD_")
    }
    env.update(
        DATABASE_URL=postgres_url,
        REDIS_URL=redis_url,
        READERBOARD_DATA_DIR=str(base / "data"),
        # Sessions made on one web process are read by the other: one key for the deployment.
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="readerboard.settings",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    logs = base / "logs"
    logs.mkdir()
    deployment = Deployment(env=env, data_dir=base / "data", database_url=postgres_url, logs=logs)
    try:
        deployment.run(PYTHON, "manage.py", "migrate", "--noinput", "-v", "0")
        deployment.seed = json.loads(
            deployment.run(PYTHON, "-c", SEED_SCRIPT, str(READS_PER_CASE)).stdout.splitlines()[-1]
        )
        deployment.web_urls = [deployment.start_web("web-a"), deployment.start_web("web-b")]
        deployment.worker_nodes = [
            deployment.start_worker("worker-a", WORKER_A_QUEUES),
            deployment.start_worker("worker-b", WORKER_B_QUEUES),
        ]
        yield deployment
    finally:
        deployment.stop_all()


# --- harness: clients --------------------------------------------------------------------------


# --- the test ----------------------------------------------------------------------------------


def test_two_web_processes_and_two_workers_share_one_reading_session(deployment: Deployment):
    web_a, web_b = 0, 1
    seed = deployment.seed
    with LeaderboardSocket(deployment.web_urls[web_a]) as leaderboard:
        assert leaderboard.wait_for_total(0)["total_reads"] == 0  # the board sent on connect

        readers = []
        for number, via in ((1, web_a), (2, web_b)):
            reader = ReaderClient(deployment.web_urls)
            response, _ = reader.request(
                "POST",
                "/api/signup/",
                via=via,
                json={
                    "display_name": f"Scale Reader {number}",
                    "pin": f"{number}{number}{number}{number}",
                    "role": "trainee",
                    "years_experience": number,
                    "consent": True,
                },
            )
            assert response.status_code == 201, response.text
            readers.append(reader)

        submitted = 0
        for reader_number, reader in enumerate(readers):
            # The session cookie made on one process must be honoured by the other.
            me, served_by = reader.request("GET", "/api/me/")
            assert me.status_code == 200 and me.json()["reads_count"] == 0, (served_by, me.text)
            tasks, _ = reader.request("GET", "/api/tasks/")
            assert [task["id"] for task in tasks.json()] == [seed["task"]], tasks.text
            for _ in seed["cases"]:
                offered, _ = reader.request("POST", f"/api/tasks/{seed['task']}/next-case/")
                assert offered.status_code == 200, offered.text
                case = next(case for case in seed["cases"] if case["id"] == offered.json()["id"])
                document = line_read_document(case, offset_px=0.6 * reader_number)
                saved, _ = reader.request("POST", "/api/reads/", json=document, via=web_b)
                assert saved.status_code == 201, saved.text
                submitted += 1
                # A submit through web B reaches a socket held on web A (through the Redis channel layer).
                assert leaderboard.wait_for_total(submitted)["total_reads"] == submitted
                retried, _ = reader.request("POST", "/api/reads/", json=document, via=web_a)
                assert retried.status_code == 200 and retried.json()["read"]["id"] == saved.json()["read"]["id"]
            nothing_left, _ = reader.request("POST", f"/api/tasks/{seed['task']}/next-case/")
            assert nothing_left.status_code == 204, nothing_left.text

    case_ids = [case["id"] for case in seed["cases"]]
    consensus = wait_until(
        lambda: _current_consensus(deployment, case_ids),
        timeout_s=90,
        what="consensus of both cases from worker A",
    )
    for case_id, n_reads, accepted_lesions in consensus:
        assert n_reads == READS_PER_CASE, case_id
        assert accepted_lesions == 1, f"case {case_id}: both readers measured the same lesion"

    export = _export_through_api(deployment, task_id=seed["task"])
    rows = list(csv.DictReader(io.StringIO(export)))
    assert len(rows) == READS_PER_CASE * len(case_ids)

    stats = deployment.celery_inspect("stats")
    worker_a, worker_b = deployment.worker_nodes
    ran_on_a = stats[worker_a]["total"]
    ran_on_b = stats[worker_b]["total"]
    assert any("consensus" in name for name in ran_on_a), ran_on_a
    assert any("export" in name for name in ran_on_b), ran_on_b
    assert not any("consensus" in name for name in ran_on_b), "consensus left its queue"
    assert not any("export" in name for name in ran_on_a), "export left its queue"


def _current_consensus(deployment: Deployment, case_ids: list[int]) -> list[tuple] | None:
    rows = sql_rows(
        deployment.database_url,
        """
        SELECT c.case_id, c.n_reads, COUNT(l.id) FILTER (WHERE l.accepted)
        FROM annotations_caseconsensus c LEFT JOIN annotations_consensuslesion l ON l.consensus_id = c.id
        WHERE c.is_current AND c.case_id = ANY(%s)
        GROUP BY c.id ORDER BY c.case_id
        """,
        case_ids,
    )
    complete = [row for row in rows if row[1] >= READS_PER_CASE]
    return complete if len(complete) == len(case_ids) else None


def _export_through_api(deployment: Deployment, *, task_id: int) -> str:
    """Request a reads CSV as the researcher (token auth), wait for a worker to finish it, return its text."""
    requests = loopback_session()
    headers = {"Authorization": f"Token {deployment.seed['researcher_token']}"}
    web_a, web_b = deployment.web_urls
    created = requests.post(
        f"{web_a}/api/exports/", json={"task": task_id, "format": "csv"}, headers=headers, timeout=30
    )
    assert created.status_code in (201, 202), created.text
    export_id = created.json()["id"]

    def finished() -> dict | None:
        job = requests.get(f"{web_b}/api/exports/{export_id}/", headers=headers, timeout=30)
        assert job.status_code == 200, job.text
        body = job.json()
        assert body["status"] != "failed", body
        return body if body["status"] == "done" else None

    wait_until(finished, timeout_s=90, what=f"export {export_id} from worker B")
    download = requests.get(f"{web_b}/api/exports/{export_id}/download/", headers=headers, timeout=30)
    assert download.status_code == 200, download.text[:500]
    return download.content.decode("utf-8-sig")
