"""Faults on real services: a worker killed mid-task, Redis gone while readers submit, the ASGI server restarted.

One deployment for the module: a fresh PostgreSQL database, a redis-server of our own on a free
port (never the machine's shared one, since this test kills it), a Daphne process on a loopback
socket that this process keeps open (so a restarted Daphne serves the same URL and connections
made in between wait in the backlog), and Celery workers started per test. A held PostgreSQL
lock stops a task at a known point in its middle, which is when the worker is killed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.integration.processes import (
    BIN,
    PYTHON,
    ROOT,
    Deployment,
    PrivateRedis,
    ReaderClient,
    deployment_env,
    fresh_postgres_database,
    line_read_document,
    loopback_listener,
    loopback_session,
    private_redis,
    sql_rows,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(420)]

VISIBILITY_TIMEOUT_S = 5
SWEEP_S = 3
READS_PER_CASE = 2

SEED_SCRIPT = r"""
import json
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

ensure_role_groups()
tools = ["long_axis", "bidirectional", "no_lesion", "skip"]
tasks = {name: Task.objects.create(name=name, reads_per_case=2, tools=tools)
         for name in ("Fault study", "Control study", "Outage study", "Export study", "Disconnect study")}
seed = {name: {"task": task.pk, "cases": []} for name, task in tasks.items()}
for number, center in enumerate([(-8.0, 6.0, 0.0), (10.0, -4.0, 0.0), (0.0, 8.0, 0.0)], start=1):
    lesion = SyntheticLesion(center_mm=center, diameters_mm=(16.0, 10.0, 12.0))
    patient = SyntheticPatient(patient_id=f"RB-FAULT-{number}", patient_name="Fault^Test", lesions=[lesion],
                               rows=64, columns=64, slices=9, pixel_spacing_mm=1.0, slice_spacing_mm=2.5, seed=number)
    written = write_series(patient, settings.DATA_DIR / "seed" / patient.patient_id)
    import_paths(written.files, collection_name="Faults")
    series = Series.objects.get(series_instance_uid=written.series_instance_uid)
    instance = min(Instance.objects.filter(series=series), key=lambda i: abs(i.image_position_patient[2] - center[2]))
    row_mm, col_mm = instance.pixel_spacing_mm
    x0, y0 = instance.image_position_patient[:2]
    for name, task in tasks.items():
        case = Case.objects.create(task=task, series=series, label=f"{name} case {number}")
        seed[name]["cases"].append({"id": case.pk, "series": number, "sop_instance_uid": instance.sop_instance_uid,
                                    "center": [(center[0] - x0) / col_mm, (center[1] - y0) / row_mm],
                                    "column_mm": col_mm})
researcher = get_user_model().objects.create_user(username="fault-researcher", password=None)
grant_role(researcher, RESEARCHER)
seed["researcher_token"] = Token.objects.create(user=researcher).key
print(json.dumps(seed))
"""

BROWSER_SEED = r"""
import json
import django
django.setup()
from annotations.demo.ct_demo import make_demo
from tests.e2e.conftest import e2e_patient
print(json.dumps({"task": make_demo(patients=[e2e_patient(1), e2e_patient(2)], include_odd_dicom=False,
                                    simulated_study=False).task_id}))
"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    with private_redis(tmp_path_factory.mktemp("fault-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, redis_server: PrivateRedis) -> Iterator[Deployment]:
    psycopg = pytest.importorskip("psycopg")
    base = tmp_path_factory.mktemp("faults")
    (base / "logs").mkdir()
    try:
        database = fresh_postgres_database("rb_faults")
        database_url = database.__enter__()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    env = deployment_env(
        database_url=database_url,
        redis_url=redis_server.url,
        data_dir=base / "data",
        READERBOARD_CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_S),
        READERBOARD_CONSENSUS_SWEEP_S=str(SWEEP_S),
    )
    deployment = Deployment(env=env, data_dir=base / "data", database_url=database_url, logs=base / "logs")
    listener = loopback_listener()
    try:
        deployment.run(PYTHON, "manage.py", "migrate", "--noinput", "-v", "0")
        deployment.seed = json.loads(deployment.run(PYTHON, "-c", SEED_SCRIPT).stdout.strip().splitlines()[-1])
        deployment.seed["listener"] = listener
        deployment.web_urls = [deployment.start_web("web", listener=listener)]
        yield deployment
    finally:
        deployment.stop_all()
        listener.close()
        database.__exit__(None, None, None)


# --- helpers --------------------------------------------------------------------------------------


def signed_up_reader(deployment: Deployment, name: str) -> ReaderClient:
    reader = ReaderClient(deployment.web_urls)
    answer = reader.sign_up(name)
    assert answer.status_code == 201, answer.text
    return reader


def read_every_case(reader: ReaderClient, study: dict, *, offset_px: float) -> list[dict]:
    """The reader asks for cases until the task has none left for them, reading each; returns the documents."""
    documents = []
    for _ in study["cases"]:
        offered, _ = reader.request("POST", f"/api/tasks/{study['task']}/next-case/")
        assert offered.status_code == 200, offered.text
        case = next(case for case in study["cases"] if case["id"] == offered.json()["id"])
        document = line_read_document(case, offset_px=offset_px + case["series"] * 0.2)
        saved, _ = reader.request("POST", "/api/reads/", json=document)
        assert saved.status_code == 201, saved.text
        documents.append(document)
    return documents


class HeldLock:
    """A PostgreSQL transaction holding table locks, so a task that needs them stops there until release()."""

    def __init__(self, database_url: str, *statements: str) -> None:
        import psycopg

        self.connection = psycopg.connect(database_url)
        for statement in statements:
            self.connection.execute(statement)

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


def blocked_backends(database_url: str) -> list[str]:
    """Queries of other sessions of this database waiting for a lock."""
    return [
        query
        for (query,) in sql_rows(
            database_url,
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
    ]


def task_ids(log: str, task_name: str, event: str) -> list[str]:
    return re.findall(rf"{re.escape(task_name)}\[([0-9a-f-]{{36}})\] {event}", log)


def consensus_rows(deployment: Deployment, case_ids: list[int]) -> dict[int, list[tuple]]:
    """Per case: every CaseConsensus row as (is_current, n_reads, accepted lesions' long axes, rounded)."""
    rows = sql_rows(
        deployment.database_url,
        """
        SELECT c.case_id, c.id, c.is_current, c.n_reads,
               COALESCE(json_agg(l.long_axis ORDER BY l.lesion_index) FILTER (WHERE l.accepted), '[]')
        FROM annotations_caseconsensus c LEFT JOIN annotations_consensuslesion l ON l.consensus_id = c.id
        WHERE c.case_id = ANY(%s) GROUP BY c.id ORDER BY c.case_id, c.id
        """,
        case_ids,
    )
    result: dict[int, list[tuple]] = {case_id: [] for case_id in case_ids}
    for case_id, _, is_current, n_reads, long_axes in rows:
        result[case_id].append((is_current, n_reads, json.dumps(long_axes, sort_keys=True)))
    return result


def current_consensus_count(deployment: Deployment, case_ids: list[int]) -> int:
    ((count,),) = sql_rows(
        deployment.database_url,
        "SELECT COUNT(*) FROM annotations_caseconsensus WHERE is_current AND case_id = ANY(%s) AND n_reads = %s",
        case_ids,
        READS_PER_CASE,
    )
    return count


# --- a worker killed in the middle of a task --------------------------------------------------------


def test_a_worker_killed_mid_consensus_has_its_task_redelivered_and_computed_once_with_identical_results(
    deployment: Deployment,
):
    seed = deployment.seed
    fault, control = seed["Fault study"], seed["Control study"]
    # No worker runs yet: every submit leaves a consensus message waiting in Redis.
    readers = [signed_up_reader(deployment, f"Kill Reader {n}") for n in (1, 2)]
    for offset, reader in enumerate(readers):
        for study in (fault, control):
            read_every_case(reader, study, offset_px=0.5 * offset)
    case_ids = [case["id"] for study in (fault, control) for case in study["cases"]]

    # Storing a result needs a row lock on the consensus table; hold the table so the first task stops there.
    lock = HeldLock(deployment.database_url, "LOCK TABLE annotations_caseconsensus IN EXCLUSIVE MODE")
    try:
        deployment.start_worker("consensus-1", "consensus")
        waiting = wait_until(
            lambda: [q for q in blocked_backends(deployment.database_url) if "caseconsensus" in q],
            60,
            "the consensus task to block while storing its result",
            deployment.service("consensus-1"),
        )
        assert waiting
        killed = deployment.service("consensus-1")
        (in_flight,) = task_ids(killed.log_text(), "compute_case_consensus", "received")
        killed.kill_hard()
    finally:
        lock.release()
    assert current_consensus_count(deployment, case_ids) == 0, "the killed task must not have stored anything"

    # Redis hands an unacknowledged message out again once its visibility timeout has passed.
    time.sleep(VISIBILITY_TIMEOUT_S + 1)
    deployment.start_worker("consensus-2", "consensus")
    wait_until(
        lambda: current_consensus_count(deployment, case_ids) == len(case_ids),
        90,
        "every case's consensus after the redelivery",
        deployment.service("consensus-2"),
    )
    survivor_log = deployment.service("consensus-2").log_text()
    assert in_flight in task_ids(survivor_log, "compute_case_consensus", "succeeded"), "the killed task was not redone"

    rows = consensus_rows(deployment, case_ids)
    for case_id, stored in rows.items():
        assert len(stored) == 1, f"case {case_id}: the consensus was stored {len(stored)} times"
        assert stored[0][:2] == (True, READS_PER_CASE)
    # Same series, same reads: the case whose task was killed ends exactly like its untouched twin.
    for faulted, twin in zip(fault["cases"], control["cases"], strict=True):
        assert rows[faulted["id"]][0][2] == rows[twin["id"]][0][2] != "[]"
    deployment.service("consensus-2").stop()


def test_a_worker_process_killed_mid_export_is_redelivered_and_the_file_matches_an_undisturbed_export(
    deployment: Deployment,
):
    psutil = pytest.importorskip("psutil")
    seed = deployment.seed
    session = loopback_session()
    headers = {"Authorization": f"Token {seed['researcher_token']}"}
    web = deployment.web_urls[0]

    def request_export() -> int:
        created = session.post(
            f"{web}/api/exports/", json={"task": seed["Export study"]["task"], "format": "csv"}, headers=headers
        )
        assert created.status_code in (201, 202), created.text
        return created.json()["id"]

    def job(job_id: int) -> dict:
        answer = session.get(f"{web}/api/exports/{job_id}/", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def download(job_id: int) -> list[dict]:
        answer = session.get(f"{web}/api/exports/{job_id}/download/", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))

    # This test's own reads (every test stands alone, in any order): two readers read every case.
    export_study = seed["Export study"]
    for offset, name in enumerate(("Export Reader 1", "Export Reader 2")):
        read_every_case(signed_up_reader(deployment, name), export_study, offset_px=0.5 * offset)

    export_id = request_export()
    # Reading the reads needs the table; holding it stops the export after it has marked itself running.
    lock = HeldLock(deployment.database_url, "LOCK TABLE annotations_read IN ACCESS EXCLUSIVE MODE")
    try:
        deployment.start_worker("export-1", "export", pool="prefork", concurrency=1)
        service = deployment.service("export-1")
        wait_until(
            lambda: job(export_id)["status"] == "running" and blocked_backends(deployment.database_url),
            60,
            "the export to block in the middle",
            service,
        )
        (in_flight,) = task_ids(service.log_text(), "run_export_job", "received")
        (pool_process,) = psutil.Process(service.process.pid).children(recursive=True)
        pool_process.kill()  # SIGKILL of the process running the task; the worker itself lives on
    finally:
        lock.release()

    finished = wait_until(lambda: job(export_id)["status"] == "done" and job(export_id), 90, "the export", service)
    log = service.log_text()
    assert "WorkerLostError" in log or "signal 9" in log, log[-2000:]
    assert task_ids(log, "run_export_job", "succeeded").count(in_flight) == 1

    undisturbed = request_export()
    wait_until(lambda: job(undisturbed)["status"] == "done", 90, "the undisturbed export", service)
    rows, reference = download(export_id), download(undisturbed)
    assert len(rows) == 2 * len(export_study["cases"])
    assert rows == reference
    assert finished["progress_done"] == finished["progress_total"]
    leftovers = [p.name for p in (deployment.data_dir / "exports").rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []
    service.stop()


# --- Redis gone while readers submit ------------------------------------------------------------------


def test_reads_submitted_while_redis_is_down_are_stored_and_the_sweep_computes_them_when_it_returns(
    deployment: Deployment, redis_server: PrivateRedis, tmp_path
):
    study = deployment.seed["Outage study"]
    case_ids = [case["id"] for case in study["cases"]]
    deployment.start_worker("outage-worker", "default,consensus")
    deployment.start(
        "beat",
        [
            str(BIN / "celery"),
            "-A",
            "readerboard",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
    )
    readers = [signed_up_reader(deployment, f"Outage Reader {n}") for n in (1, 2)]

    redis_server.stop()
    health = loopback_session().get(f"{deployment.web_urls[0]}/healthz", timeout=10)
    assert health.status_code == 503
    started = time.monotonic()
    for offset, reader in enumerate(readers):
        read_every_case(reader, study, offset_px=0.4 * offset)  # asserts every submit is a 201
    outage_s = time.monotonic() - started
    stored = sql_rows(
        deployment.database_url, "SELECT COUNT(*) FROM annotations_read WHERE case_id = ANY(%s)", case_ids
    )
    assert stored == [(READS_PER_CASE * len(case_ids),)]
    assert outage_s < 30, f"six cases read and submitted in {outage_s:.0f} s without Redis"
    assert current_consensus_count(deployment, case_ids) == 0  # nothing could be queued
    web_log = deployment.service("web").log_text()
    assert '"POST /api/reads/" 500' not in web_log

    redis_server.start()  # empty: every message queued before the outage is gone too
    wait_until(
        lambda: current_consensus_count(deployment, case_ids) == len(case_ids),
        120,
        "the beat sweep to compute the cases read during the outage",
        deployment.service("outage-worker"),
    )
    assert "sweep_stale_consensus" in deployment.service("outage-worker").log_text()
    deployment.service("beat").stop()
    deployment.service("outage-worker").stop()


# --- a client gone in the middle of a submit -----------------------------------------------------------


def raw_post(reader: ReaderClient, path: str, body: bytes, *, send_bytes: int) -> None:
    """Send a POST of `body` with the reader's cookies, only its first `send_bytes` body bytes, then hang up."""
    base_url = reader.web_urls[0]
    host, port = base_url.removeprefix("http://").split(":")
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in reader.session.cookies)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCookie: {cookies}\r\n"
        f"X-CSRFToken: {reader.session.cookies.get('csrftoken')}\r\nReferer: {base_url}/\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + body[:send_bytes])
    # Closed without reading a byte of the answer, like a tablet leaving the Wi-Fi.


@pytest.mark.parametrize("gone", ["after the whole body", "halfway through the body"])
def test_a_client_that_hangs_up_mid_submit_and_retries_stores_exactly_one_read(deployment: Deployment, gone):
    study = deployment.seed["Disconnect study"]
    reader = signed_up_reader(deployment, f"Disconnect Reader {gone.split()[0]}")
    offered, _ = reader.request("POST", f"/api/tasks/{study['task']}/next-case/")
    assert offered.status_code == 200, offered.text
    case = next(case for case in study["cases"] if case["id"] == offered.json()["id"])
    document = line_read_document(case)
    body = json.dumps(document).encode()
    log_before = len(deployment.service("web").log_text())

    raw_post(reader, "/api/reads/", body, send_bytes=len(body) if gone == "after the whole body" else len(body) // 2)
    time.sleep(1.0)  # whatever the server does with the abandoned request, it has done it
    retried, _ = reader.request("POST", "/api/reads/", json=document)

    assert retried.status_code in (200, 201), retried.text  # 200: the first one was stored; 201: stored now
    stored = sql_rows(
        deployment.database_url, "SELECT id FROM annotations_read WHERE client_uuid = %s", document["client_uuid"]
    )
    assert len(stored) == 1
    assert retried.json()["read"]["id"] == stored[0][0]
    if gone == "halfway through the body":
        assert retried.status_code == 201  # half a document is never stored
    assert "Traceback" not in deployment.service("web").log_text()[log_before:]


# --- the ASGI server restarted under an open page ----------------------------------------------------


@pytest.mark.browser
def test_after_an_asgi_restart_the_leaderboard_reconnects_and_a_drawn_read_survives_and_submits(
    deployment: Deployment,
):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.e2e.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
    from tests.e2e.test_reading_page import READY, draw_long_axis_across_lesion, sign_up_and_open_reading

    if not Path(CHROMIUM).exists() or not (ROOT / "static" / "viewer" / "read.js").exists():
        pytest.skip("needs Debian chromium and the built viewer bundle (scripts/build-frontend.sh)")
    task_id = json.loads(deployment.run(PYTHON, "-c", BROWSER_SEED).stdout.strip().splitlines()[-1])["task"]
    # The web process serves collected static files only (DEBUG is off), so collect them and restart once.
    deployment.run(PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0", timeout_s=300)
    listener = deployment.seed["listener"]
    deployment.service("web").stop()
    base_url = deployment.start_web("web", listener=listener)
    deployment.start_worker("browser-worker", "default,consensus")
    ARTIFACTS.mkdir(exist_ok=True)

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        errors: list[str] = []
        board_context, reading_context = (
            browser.new_context(),
            browser.new_context(viewport={"width": 1440, "height": 900}),
        )
        board, page = board_context.new_page(), reading_context.new_page()
        for opened in (board, page):
            opened.set_default_timeout(30_000)
            opened.on("pageerror", lambda error: errors.append(str(error)))
        board.goto(f"{base_url}/leaderboard/")
        board.wait_for_function("() => document.getElementById('lb-live').dataset.state === 'live'")
        total_before = int(board.locator("#lb-total").text_content())

        sign_up_and_open_reading(SimpleNamespace(page=page), base_url, task_id, "Restart Reader")
        case_id = page.evaluate("() => window.readerboardViewer.caseId()")
        drawn_mm = draw_long_axis_across_lesion(page)
        page.wait_for_function(
            "() => Object.keys(localStorage).some((k) => k.startsWith('readerboard:draft:') "
            "&& localStorage.getItem(k).includes('annotationUID'))"
        )

        deployment.service("web").stop()
        board.wait_for_function("() => document.getElementById('lb-live').dataset.state === 'offline'")
        board.screenshot(path=str(ARTIFACTS / "faults-leaderboard-offline.png"))
        deployment.start_web("web", listener=listener)
        board.wait_for_function("() => document.getElementById('lb-live').dataset.state === 'live'", timeout=60_000)

        # The reader reloads on the restarted server: the drawing comes back from localStorage.
        page.reload()
        page.wait_for_function(READY, timeout=60_000)
        assert page.evaluate("() => window.readerboardViewer.caseId()") == case_id
        page.locator("[data-testid=long-axis-mm]").first.wait_for()
        assert float(page.locator("[data-testid=long-axis-mm]").first.text_content()) == drawn_mm
        page.screenshot(path=str(ARTIFACTS / "faults-reading-after-restart.png"))
        page.locator("#submit").click()
        page.wait_for_function(
            f"() => window.readerboardViewer.ready() && window.readerboardViewer.caseId() !== {case_id}",
            timeout=60_000,
        )
        # The push of the new read arrives over the reconnected socket.
        board.wait_for_function(
            f"() => Number(document.getElementById('lb-total').textContent) === {total_before + 1}", timeout=30_000
        )
        board.screenshot(path=str(ARTIFACTS / "faults-leaderboard-reconnected.png"))
        browser.close()

    stored = sql_rows(
        deployment.database_url,
        "SELECT m.length_mm FROM annotations_mark m JOIN annotations_read r ON r.id = m.read_id "
        "JOIN annotations_reader p ON p.id = r.reader_id WHERE p.display_name = %s AND r.case_id = %s",
        "Restart Reader",
        case_id,
    )
    assert len(stored) == 1 and abs(stored[0][0] - drawn_mm) < 0.5
    assert errors == []
    deployment.service("browser-worker").stop()
