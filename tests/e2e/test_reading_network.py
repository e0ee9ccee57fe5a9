"""Reading over booth Wi-Fi in a real Chromium: the asked-for slice goes out before prefetch, JPEG-LS
frames decode in the browser to exactly the stored pixels, and phone and tablet layouts fit the screen."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.e2e.test_reading_page import sign_up_and_open_reading
from tests.viewer.test_lossless_frames import SAMPLES, write_image
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records every frame request the page makes, in the order the browser issues them.
RECORD_FRAME_REQUESTS = """
window.__frameRequests = [];
const open = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  if (String(url).includes('/frames/')) window.__frameRequests.push(String(url));
  return open.call(this, method, url, ...rest);
};
"""
LONG_SERIES_SLICES = 160


@pytest.fixture
def long_series_task(transactional_db, isolated_data_dir):
    """A task whose only case is a 160-slice 256 x 256 CT at 1.25 mm."""
    from annotations.demo.ct_demo import make_demo
    from annotations.models import Task

    patient = SyntheticPatient(
        patient_id="RB-E2E-LONG",
        patient_name="E2E^Long",
        lesions=[SyntheticLesion(center_mm=(-30.0, 20.0, 0.0), diameters_mm=(20.0, 14.0, 14.0))],
        rows=256,
        columns=256,
        slices=LONG_SERIES_SLICES,
        pixel_spacing_mm=1.2,
        slice_spacing_mm=1.25,
        seed=3,
    )
    summary = make_demo(patients=[patient], include_odd_dicom=False, simulated_study=False)
    return Task.objects.get(pk=summary.task_id)


def throttle(browser_page, *, megabits_per_s: float, latency_ms: float) -> None:
    """Emulate a slow network through the DevTools protocol, as a shared booth Wi-Fi would be."""
    session = browser_page.context.new_cdp_session(browser_page.page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": latency_ms,
            "downloadThroughput": megabits_per_s * 1e6 / 8,
            "uploadThroughput": megabits_per_s * 1e6 / 8,
        },
    )


def frame_of(url: str) -> str:
    """The instance UID of a frame URL (one frame per instance in the synthetic CT)."""
    return url.split("/instances/")[1].split("/frames/")[0]


def test_after_a_jump_the_asked_slice_is_requested_before_the_remaining_prefetch(
    live_server, viewer_bundle, long_series_task, browser_page
):
    page = browser_page.page
    page.add_init_script(RECORD_FRAME_REQUESTS)
    # Slow enough that prefetch is still busy when the reader jumps.
    throttle(browser_page, megabits_per_s=4, latency_ms=20)
    sign_up_and_open_reading(browser_page, live_server.url, long_series_task.pk, "Jumping Reader")
    page.wait_for_function("() => window.__frameRequests.length >= 6")
    target = 130

    before_jump = page.evaluate(
        """(target) => {
            const slider = document.querySelector('#slice-slider');
            const issued = window.__frameRequests.length;
            slider.value = String(target + 1);
            slider.dispatchEvent(new Event('input', { bubbles: true }));
            return issued;
        }""",
        target,
    )
    page.wait_for_function(
        f"() => window.readerboardViewer.sliceIndex() === {target}"
        f" && document.querySelector('#slice-label').textContent.startsWith('Slice {target + 1} ')",
        timeout=60_000,
    )
    page.wait_for_function(f"() => window.__frameRequests.length >= {before_jump} + 6")

    image_ids = page.evaluate("() => window.readerboardViewer.imageIds()")
    after = [frame_of(url) for url in page.evaluate("() => window.__frameRequests")[before_jump:]]
    index_of = {frame_of(image_id): k for k, image_id in enumerate(image_ids)}
    assert after[0] == frame_of(image_ids[target]), "the asked-for slice is the first request after the jump"
    # Prefetch then resumes outward from the new slice, not where it was.
    assert all(abs(index_of[uid] - target) <= 6 for uid in after[1:6]), [index_of[uid] for uid in after[:6]]
    assert not browser_page.errors


def test_jpeg_ls_frames_decode_in_the_browser_to_exactly_the_stored_pixels(
    live_server, viewer_bundle, demo_task, browser_page, tmp_path
):
    from annotations.models import Case
    from viewer.models import Instance
    from viewer.services.dicom_import import import_paths

    expected = {}
    for number, (kind, make) in enumerate(SAMPLES.items()):
        frames, photometric, bits_stored = make(np.random.default_rng(number))
        path = write_image(tmp_path / f"{number}.dcm", frames, photometric=photometric, bits_stored=bits_stored)
        import_paths([path])
        instance = Instance.objects.select_related("series__study").get(
            sop_instance_uid=pydicom.dcmread(path).SOPInstanceUID
        )
        # A case of an open task, so a reader may see the series.
        Case.objects.create(task=demo_task, series=instance.series, label=kind)
        expected[kind] = (instance, frames)
    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Pixel Reader")

    for kind, (instance, frames) in expected.items():
        series = instance.series
        decoded = page.evaluate(
            "(caseLike) => window.readerboardViewer.loadFrames(caseLike)",
            {
                "wadors_root": "/dicomweb",
                "study_instance_uid": series.study.study_instance_uid,
                "series_instance_uid": series.series_instance_uid,
                "instances": [{"sop_instance_uid": instance.sop_instance_uid, "frames": len(frames)}],
            },
        )
        assert [frame["transferSyntax"] for frame in decoded] == ["1.2.840.10008.1.2.4.80"] * len(frames), kind
        for frame, stored in zip(decoded, frames, strict=True):
            pixels = np.array(frame["pixels"], dtype=np.float64)
            if frame["preScaled"]:
                pixels = (pixels - frame["intercept"]) / frame["slope"]
            assert np.array_equal(pixels.reshape(stored.shape), stored.astype(np.float64)), kind
    assert not browser_page.errors


def controls_outside(page) -> list[str]:
    """Visible controls of the reading page whose box is not wholly inside the window."""
    return page.evaluate(
        """() => {
            const outside = [];
            for (const element of document.querySelectorAll('.reading button, .reading input, .reading textarea')) {
                const box = element.getBoundingClientRect();
                if (!box.width || !box.height || getComputedStyle(element).visibility === 'hidden') continue;
                const inside = box.left >= 0 && box.top >= 0
                    && box.right <= window.innerWidth + 0.5 && box.bottom <= window.innerHeight + 0.5;
                if (!inside) outside.push(`${element.id || element.textContent.trim() || element.tagName}`);
            }
            return outside;
        }"""
    )


@pytest.mark.parametrize(("device", "width", "height"), [("phone", 390, 844), ("tablet", 820, 1180)])
def test_phone_and_tablet_in_portrait_fit_every_control_and_give_the_image_most_of_the_height(
    live_server, viewer_bundle, demo_task, chromium, device, width, height
):
    from tests.e2e.conftest import _close, _open_page

    opened = _open_page(chromium, width=width, height=height, touch=True)
    try:
        page = opened.page
        sign_up_and_open_reading(opened, live_server.url, demo_task.pk, f"{device.title()} Reader")

        assert page.evaluate("() => document.scrollingElement.scrollHeight <= window.innerHeight + 1"), "no page scroll"
        image = page.locator("#viewport").bounding_box()
        assert image["height"] >= 0.6 * height, f"image is {image['height'] / height:.0%} of the height"
        assert page.locator("#submit").is_visible() and page.locator("#lesion-list").is_visible()
        # Controls in the panel are reachable by scrolling the panel, never the page.
        page.locator(".side-panel").evaluate("(panel) => panel.scrollTo(0, 0)")
        assert not [name for name in controls_outside(page) if name not in panel_controls(page)]
        opened.screenshot(f"viewer-{device}.png")

        page.locator("#toolbar-more").tap()
        assert page.locator("[data-action=invert]").is_visible()
        assert not [name for name in controls_outside(page) if name not in panel_controls(page)]
        assert page.locator("#submit").bounding_box()["y"] + 30 <= height
        opened.screenshot(f"viewer-{device}-more.png")
        assert not opened.errors
    finally:
        _close(opened)


def panel_controls(page) -> set[str]:
    """Names of controls inside the side panel's scrolling area, except Submit (which must always show)."""
    return set(
        page.evaluate(
            """() => [...document.querySelectorAll('.side-panel button, .side-panel input, .side-panel textarea')]
                .filter((element) => !element.closest('.submit-bar'))
                .map((element) => element.id || element.textContent.trim() || element.tagName)"""
        )
    )


def test_the_next_cases_first_slices_arrive_while_the_reader_finishes_and_it_opens_from_the_cache(
    live_server, viewer_bundle, demo_task, browser_page
):
    from annotations.models import Case
    from annotations.selectors import case_instances

    page = browser_page.page
    page.add_init_script(RECORD_FRAME_REQUESTS)
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Ahead Reader")
    open_case = page.evaluate("() => window.readerboardViewer.caseId()")

    # Once the open case is cached, the page names the likely next case and fetches its first slices.
    page.wait_for_function("() => window.readerboardViewer.upcomingCaseId() !== null", timeout=60_000)
    upcoming = page.evaluate("() => window.readerboardViewer.upcomingCaseId()")
    assert upcoming != open_case
    page.wait_for_function("() => window.readerboardViewer.upcomingSlicesCached() >= 11", timeout=60_000)
    first_slice = case_instances(Case.objects.get(pk=upcoming))[0].sop_instance_uid
    requested_before_submit = page.evaluate("() => window.__frameRequests.length")

    page.get_by_role("button", name="No measurable lesion").click()
    page.locator("#submit").click()
    page.wait_for_function(f"() => window.readerboardViewer.caseId() === {upcoming}", timeout=60_000)
    page.wait_for_function("() => window.readerboardViewer.ready()", timeout=60_000)

    # The next case opened on a slice already in the cache: no request went out for it again.
    later = page.evaluate(f"() => window.__frameRequests.slice({requested_before_submit})")
    assert not [url for url in later if frame_of(url) == first_slice], later
