"""The console in headless Chromium against a real ASGI server (daphne) with WebSockets.

The server runs in its own process on a free port with its own SQLite file and data
dir (tables made from the models, as in the unit tests), so these tests see exactly
what an admin's browser would: uploads, the task form and the live dashboard.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ADMIN = ("console-admin", "console-admin-pass-1")
READER = ("Rita Reader", "4321")

SETTINGS = """
from readerboard.settings import *  # noqa: F403


class _ModelsNotMigrations(dict):
    # Tables straight from the models, like pytest --nomigrations.
    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


MIGRATION_MODULES = _ModelsNotMigrations()
"""

SETUP = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from annotations.models import Case, Task
from annotations.booth.readers import register_reader
from annotations.booth.roles import ADMIN, grant_role, ensure_role_groups
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import write_series
from tests.conftest import small_patient
from django.conf import settings

ensure_role_groups()
admin = get_user_model().objects.create_user(username=%(admin)r, password=%(admin_pw)r)
grant_role(admin, ADMIN)
register_reader(display_name=%(reader)r, pin=%(pin)r, role="trainee", years_experience=2)
written = write_series(small_patient("RB-E2E-001", seed=7), settings.DATA_DIR / "seed")
import_paths(written.files, collection_name="E2E CT")
series = Series.objects.get(series_instance_uid=written.series_instance_uid)
task = Task.objects.create(name="Live dashboard task", reads_per_case=3)
Case.objects.create(task=task, series=series, label="Case 1")
print(json.dumps({"task": task.id, "series": series.id}))
"""


def _env(tmp: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "READERBOARD_PRODUCTION", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="e2e_console_settings",
        PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}",
        READERBOARD_DATA_DIR=str(tmp / "data"),
        READERBOARD_SQLITE_PATH=str(tmp / "db.sqlite3"),
        DEBUG="1",  # static files straight from the finders
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    """A daphne server on a free port with an admin, a reader and one task; yields (base url, setup facts)."""
    tmp = tmp_path_factory.mktemp("console-e2e")
    (tmp / "e2e_console_settings.py").write_text(SETTINGS)
    env = _env(tmp)
    subprocess.run([sys.executable, "manage.py", "migrate", "--run-syncdb", "-v", "0"], cwd=ROOT, env=env, check=True)
    script = SETUP % {"admin": ADMIN[0], "admin_pw": ADMIN[1], "reader": READER[0], "pin": READER[1]}
    facts = json.loads(
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    log = open(tmp / "daphne.log", "w+")  # noqa: SIM115 - read while the server runs
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "readerboard.asgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        match = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", (tmp / "daphne.log").read_text())
        if match:
            port = int(match.group(1))
        elif server.poll() is not None:
            break
        time.sleep(0.2)
    if port is None:
        server.kill()
        pytest.fail("daphne did not start:\n" + (tmp / "daphne.log").read_text())
    yield f"http://127.0.0.1:{port}", facts
    server.terminate()
    server.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def new_page(browser, base_url: str):
    context = browser.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def sign_in_admin(page) -> None:
    page.goto("/console/login/")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/console/")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_multi_file_zip_uploads_through_the_page_and_reports_the_rejected_file(console_server, browser, tmp_path):
    from tests.conftest import small_patient
    from viewer.services.synthetic_ct import write_series

    base_url, _ = console_server
    written = write_series(small_patient("RB-E2E-UPLOAD", seed=11), tmp_path / "series")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, path in enumerate(written.files[:4]):
            archive.write(path, f"ct/IM{index:04d}.dcm")
        archive.writestr("ct/README.txt", "scanner notes, not an image")
    (tmp_path / "scans.zip").write_bytes(buffer.getvalue())
    context, page, errors = new_page(browser, base_url)
    sign_in_admin(page)

    page.goto("/console/upload/")
    page.fill("#collection", "Browser upload")
    page.set_input_files("#file-input", [str(tmp_path / "scans.zip"), str(written.files[5])])
    page.click("#start")
    page.wait_for_function(
        "document.getElementById('import-progress').getAttribute('aria-valuenow') === '100'", timeout=60_000
    )
    page.wait_for_selector("#report:not([hidden])")
    page.wait_for_timeout(400)  # let the bar's width transition finish before the screenshot

    rows = page.locator("#report-rows tr")
    report = {rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
              for i in range(rows.count())}  # fmt: skip
    assert report["scans.zip:ct/README.txt"] == "rejected"
    assert sum(1 for status in report.values() if status == "imported") == 5
    assert "not DICOM" in page.locator("#report-rows tr.rejected td").nth(2).inner_text()
    assert page.locator("#report-summary").inner_text() == "5 imported · 0 duplicates · 1 rejected"
    assert page.locator("#recent-imports tr").first.locator("td").nth(7).inner_text() == "1"
    screenshot(page, "upload-report")
    assert errors == []
    context.close()


def test_a_nifti_upload_takes_its_modality_and_patient_from_the_page(console_server, browser, tmp_path):
    import gzip

    import nibabel as nib
    import numpy as np

    base_url, _ = console_server
    volume = np.random.default_rng(9).integers(0, 900, size=(16, 14, 5), dtype=np.int16)
    nifti = tmp_path / "sub-07_T1w.nii.gz"
    nifti.write_bytes(gzip.compress(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 3.0, 1.0])).to_bytes()))
    context, page, errors = new_page(browser, base_url)
    sign_in_admin(page)

    page.goto("/console/upload/")
    page.fill("#collection", "Browser NIfTI")
    assert not page.locator("#nifti-options").evaluate("(details) => details.open")
    page.set_input_files("#file-input", [str(nifti)])
    assert page.locator("#nifti-options").evaluate("(details) => details.open")  # a NIfTI file shows its options
    page.select_option("#nifti-modality", "MR")
    page.fill("#nifti-patient-id", "ATLAS\\07")
    page.fill("#nifti-patient-name", "Atlas^Seven")
    page.click("#start")
    error = page.locator("[data-error-for=patient_id]")
    error.wait_for()
    assert "backslash" in error.inner_text()
    assert page.locator("#nifti-patient-id").get_attribute("aria-invalid") == "true"
    screenshot(page, "upload-nifti-options")

    page.fill("#nifti-patient-id", "ATLAS-07")
    page.click("#start")
    page.wait_for_selector("#report:not([hidden])", timeout=60_000)
    assert page.locator("#report-summary").inner_text().startswith("5 imported")
    assert page.locator("[data-error-for=patient_id]").is_hidden()
    page.locator("#recent-imports tr").first.locator("a").click()
    assert "NIfTI volumes imported as MR, patient ID ATLAS-07, patient name Atlas^Seven" in page.inner_text("main")
    page.goto("/console/collections/")
    page.get_by_role("link", name="Browser NIfTI").click()
    assert "ATLAS-07" in page.inner_text("main") and "MR" in page.inner_text("main")
    assert errors == []
    context.close()


def test_an_admin_creates_a_task_through_the_page(console_server, browser):
    base_url, facts = console_server
    context, page, errors = new_page(browser, base_url)
    sign_in_admin(page)

    page.goto("/console/tasks/new/")
    page.fill("input[name=name]", "Browser-made task")
    page.fill("textarea[name=instructions_md]", "Measure the **largest** lesion.")
    page.wait_for_selector("#md-preview strong")
    page.check(f"input[name=series][value='{facts['series']}']")
    page.check(f"input[name=gold_series][value='{facts['series']}']")
    page.fill("input[name=reads_per_case]", "5")
    page.check("input[name=consensus_method][value=majority]")
    page.click("#add-reference")
    page.fill("input[name='ref-0-long_axis_mm']", "16")
    page.fill("input[name='ref-0-short_axis_mm']", "10")
    screenshot(page, "task-form")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/console/tasks/\d+/$"))

    assert page.locator("h1").inner_text().startswith("Browser-made task")
    assert page.locator("#stat-reads").inner_text() == "0 / 5"
    page.wait_for_selector("#case-rows tr .pill.gold")
    assert errors == []
    context.close()


def test_the_dashboard_updates_when_a_read_is_submitted_in_another_browser(console_server, browser):
    base_url, facts = console_server
    admin_context, dashboard, errors = new_page(browser, base_url)
    sign_in_admin(dashboard)
    dashboard.goto(f"/console/tasks/{facts['task']}/")
    dashboard.wait_for_selector("#live.on")
    assert dashboard.locator("#stat-reads").inner_text() == "0 / 3"

    reader_context, reader_page, reader_errors = new_page(browser, base_url)
    reader_page.goto("/login/")
    answer = reader_page.evaluate(
        """async ([name, pin, taskId]) => {
            const csrf = () => document.cookie.split('; ').find((c) => c.startsWith('csrftoken='))?.split('=')[1];
            const post = async (url, body) => {
                const r = await fetch(url, {method: 'POST', credentials: 'same-origin',
                    headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf()}, body: JSON.stringify(body)});
                return {status: r.status, body: r.status === 204 ? null : await r.json()};
            };
            const login = await post('/api/login/', {display_name: name, pin});
            const kase = await post(`/api/tasks/${taskId}/next-case/`, {});
            const read = await post('/api/reads/', {
                client_uuid: crypto.randomUUID(), case: kase.body.id, started_at: new Date().toISOString(),
                duration_s: 12.5, flags: {no_lesion: true, skip: false, quality_problem: false},
                comment: '', lesions: [],
            });
            return {login: login.status, kase: kase.status, read: read.status, detail: read.body};
        }""",
        [READER[0], READER[1], facts["task"]],
    )
    assert (answer["login"], answer["kase"], answer["read"]) == (200, 200, 201), answer

    dashboard.wait_for_function("document.getElementById('stat-reads').textContent === '1 / 3'", timeout=15_000)
    assert dashboard.locator("#stat-active").inner_text() == "1"
    assert dashboard.locator("#case-rows tr").first.locator("td").nth(1).inner_text().strip() == "1 / 3"
    screenshot(dashboard, "dashboard-live")
    assert errors == [] and reader_errors == []
    reader_context.close()
    admin_context.close()


def test_collections_preview_results_and_people_pages_render_without_script_errors(console_server, browser):
    base_url, facts = console_server
    context, page, errors = new_page(browser, base_url)
    sign_in_admin(page)
    for name, url in [
        ("home", "/console/"),
        ("collections", "/console/collections/"),
        ("series", f"/console/series/{facts['series']}/"),
        ("results", f"/console/tasks/{facts['task']}/results/"),
        ("people", "/console/people/"),
    ]:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        screenshot(page, name)
    page.goto("/console/collections/")
    page.click("text=E2E CT")
    page.wait_for_load_state("networkidle")
    thumbnail = page.locator("img.thumb").first
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, "collection")
    assert errors == []
    context.close()


def test_an_export_started_on_the_results_page_is_followed_over_its_websocket(console_server, browser):
    base_url, facts = console_server
    context, page, errors = new_page(browser, base_url)
    frames: list[str] = []

    def watch(socket) -> None:
        if "/ws/console/exports/" in socket.url:
            socket.on("framereceived", lambda payload: frames.append(payload))

    page.on("websocket", watch)
    sign_in_admin(page)
    page.goto(f"/console/tasks/{facts['task']}/results/")

    page.click("#exports button[data-format=csv]")

    page.wait_for_selector("#export-status a", timeout=30_000)
    assert "ready" in page.locator("#export-status").inner_text()
    messages = [json.loads(frame) for frame in frames]
    assert messages and messages[-1]["type"] == "export.progress" and messages[-1]["status"] == "done"
    assert errors == []
    context.close()
