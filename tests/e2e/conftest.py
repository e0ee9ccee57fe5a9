"""Fixtures for the browser tests: the built viewer bundle, Debian's headless Chromium, a page
that records script errors, and a small demo task whose lesions are known."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient

# Playwright's sync API keeps an asyncio loop running in the test thread; the ORM calls the tests and
# pytest-django's database teardown make there are still plain synchronous ones. Set for the browser
# tests only (not at import, which would leak into every later test and into servers they start).
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(autouse=True, scope="module")
def allow_sync_orm_beside_playwright():
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    yield
    if previous is None:
        os.environ.pop(ASYNC_UNSAFE, None)
    else:
        os.environ[ASYNC_UNSAFE] = previous


ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# One lesion per patient, centred on a slice (11 slices at 2.5 mm: z = 0 is slice 6).
E2E_LESION = SyntheticLesion(center_mm=(-40.0, 20.0, 0.0), diameters_mm=(24.0, 16.0, 14.0), hu=30.0)


def e2e_patient(index: int) -> SyntheticPatient:
    """A 192 x 192 x 11 CT at 1 mm pixels with one 24 x 16 mm lesion: small, quick, still looks like a CT."""
    return SyntheticPatient(
        patient_id=f"RB-E2E-{index:03d}",
        patient_name=f"E2E^Patient{index}",
        lesions=[E2E_LESION],
        rows=192,
        columns=192,
        slices=11,
        pixel_spacing_mm=1.0,
        slice_spacing_mm=2.5,
        seed=index,
    )


@pytest.fixture(scope="session")
def viewer_bundle() -> Path:
    """static/viewer/read.js, built from viewer/frontend if missing or stale."""
    subprocess.run(["bash", str(ROOT / "scripts" / "build-frontend.sh")], check=True, cwd=ROOT, timeout=600)
    bundle = ROOT / "static" / "viewer" / "read.js"
    assert bundle.exists(), "the viewer bundle was not built"
    return bundle


# Module scope: Playwright's sync API allows one running instance, and other browser test modules start their own.
@pytest.fixture(scope="module")
def chromium():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class BrowserPage:
    page: object
    context: object
    errors: list[str]

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


def _open_page(chromium, *, width: int, height: int, touch: bool):
    context = chromium.new_context(viewport={"width": width, "height": height}, has_touch=touch, is_mobile=False)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.set_default_timeout(30_000)
    return BrowserPage(page=page, context=context, errors=errors)


def _close(opened: BrowserPage) -> None:
    # Stop the page's background requests (prefetch, lease renewal) before the test database is flushed.
    opened.page.goto("about:blank")
    opened.context.close()


# Both page fixtures depend on the live server and the database so they are closed before those go.
@pytest.fixture
def browser_page(chromium, live_server, transactional_db):
    """A laptop-sized browser context that records page errors."""
    opened = _open_page(chromium, width=1440, height=900, touch=False)
    yield opened
    _close(opened)


@pytest.fixture
def tablet_page(chromium, live_server, transactional_db):
    """A tablet-sized (820 x 1180, portrait) touch context that records page errors."""
    opened = _open_page(chromium, width=820, height=1180, touch=True)
    yield opened
    _close(opened)


@pytest.fixture
def demo_task(transactional_db, isolated_data_dir):
    """The demo made with two small patients; returns the Task."""
    from annotations.demo.ct_demo import make_demo
    from annotations.models import Task

    # The follow-up demo is left out: these tests read the booth task (follow-up tests make their own data).
    summary = make_demo(patients=[e2e_patient(1), e2e_patient(2)], include_odd_dicom=False, follow_up=False)
    return Task.objects.get(pk=summary.task_id)
