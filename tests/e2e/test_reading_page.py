"""The booth reading workflow in a real headless Chromium against a live server:
sign up, read a demo case in the Cornerstone3D viewer, submit, get the next case."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import E2E_LESION, ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READY = "() => window.readerboardViewer && window.readerboardViewer.ready()"


def sign_up_and_open_reading(browser_page, base_url: str, task_id: int, display_name: str) -> None:
    """Sign up on the booth sign-up page, which goes straight on to the task's reading page."""
    page = browser_page.page
    page.goto(f"{base_url}/signup/?next=/read/{task_id}/")
    page.get_by_label("Display name").fill(display_name)
    page.get_by_label("PIN").fill("4821")
    page.get_by_label("Role").select_option("trainee")
    page.get_by_label("Subspecialty").fill("Body")
    page.get_by_label("Years of experience").fill("3")
    page.locator("[name=consent]").check()
    page.get_by_role("button", name="Start reading").click()
    page.wait_for_url(f"**/read/{task_id}/")
    page.wait_for_function(READY, timeout=60_000)
    page.wait_for_function("() => document.querySelector('#slice-label').textContent.startsWith('Slice')")


def to_page_point(page, world_mm: tuple[float, float, float]) -> tuple[float, float]:
    """Screen position of a patient-space point, through the viewport's own worldToCanvas."""
    return page.evaluate(
        """(world) => {
            const viewport = window.readerboardViewer.viewport();
            const [x, y] = viewport.worldToCanvas(world);
            const rect = viewport.element.getBoundingClientRect();
            return [rect.left + x, rect.top + y];
        }""",
        list(world_mm),
    )


def lesion_slice_index(page) -> int:
    """Index of the slice through the lesion centre (z = 0) in the viewer's stack."""
    return page.evaluate(
        """(z) => {
            const ids = window.readerboardViewer.imageIds();
            const csUtils = window.readerboardViewer.csUtils;
            return ids.findIndex((id) => {
                const world = csUtils.imageToWorldCoords(id, [0, 0]);
                return Math.abs(world[2] - z) < 0.01;
            });
        }""",
        E2E_LESION.center_mm[2],
    )


def drag(page, start, end, *, steps: int = 12) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def leaderboard(page, base_url: str) -> dict:
    response = page.request.get(f"{base_url}/api/leaderboard/")
    assert response.ok, response.text()
    return response.json()


def test_reader_measures_the_demo_lesion_paints_it_submits_and_gets_the_next_case(
    live_server, viewer_bundle, demo_task, browser_page
):
    from annotations.models import Mark, MaskSlice, Read

    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Dr Playwright")
    first_case = page.evaluate("() => window.readerboardViewer.caseId()")
    total_slices = len(page.evaluate("() => window.readerboardViewer.imageIds()"))
    assert page.locator("#slice-label").text_content() == f"Slice 1 / {total_slices}"
    assert "RECIST" in page.locator("#task-name").text_content()
    assert page.locator("#instructions").inner_text().strip(), "the task's instructions are shown"

    # Scroll: the wheel moves one slice, the keyboard and the slider the rest of the way.
    viewport_box = page.locator("#viewport").bounding_box()
    centre = (viewport_box["x"] + viewport_box["width"] / 2, viewport_box["y"] + viewport_box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(0, 120)
    page.wait_for_function("() => window.readerboardViewer.sliceIndex() === 1")
    target = lesion_slice_index(page)
    assert target > 1
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.readerboardViewer.sliceIndex() === 2")
    page.locator("#slice-slider").fill(str(target + 1))
    page.wait_for_function(f"() => window.readerboardViewer.sliceIndex() === {target}")
    assert page.locator("#slice-label").text_content() == f"Slice {target + 1} / {total_slices}"

    # Window: a preset, then a right-button drag changes it again; the readout follows.
    page.get_by_role("button", name="Lung", exact=True).click()
    assert page.locator("#window-label").text_content() == "W 1500 · L -600"
    page.mouse.move(*centre)
    page.mouse.down(button="right")
    page.mouse.move(centre[0] + 60, centre[1] + 40, steps=6)
    page.mouse.up(button="right")
    assert page.locator("#window-label").text_content() != "W 1500 · L -600"
    page.get_by_role("button", name="Soft tissue", exact=True).click()
    page.mouse.move(*to_page_point(page, E2E_LESION.center_mm))
    readout = page.locator("#pixel-readout").text_content()
    assert readout.endswith("HU"), readout
    assert abs(float(readout.split("·")[1].split()[0]) - E2E_LESION.hu) < 40  # the lesion, not fat or air

    # RECIST long axis straight across the lesion's 24 mm x diameter.
    cx, cy, cz = E2E_LESION.center_mm
    half = E2E_LESION.diameters_mm[0] / 2
    drag(page, to_page_point(page, (cx - half, cy, cz)), to_page_point(page, (cx + half, cy, cz)))
    long_axis = page.locator("[data-testid=long-axis-mm]").first
    long_axis.wait_for()
    reported_mm = float(long_axis.text_content())
    assert abs(reported_mm - E2E_LESION.long_axis_mm) <= 2.0, reported_mm

    # Paint the mask with the brush through the lesion centre.
    page.keyboard.press("m")
    drag(page, to_page_point(page, (cx - 5, cy, cz)), to_page_point(page, (cx + 5, cy + 2, cz)))
    page.wait_for_function("() => document.querySelector('#lesion-list').textContent.includes('mask 1 slice')")

    shot = browser_page.screenshot("viewer-measured.png")
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "images" / "viewer.png")
    before = leaderboard(page, live_server.url)

    page.locator("#submit").click()
    page.wait_for_function(
        f"() => window.readerboardViewer.ready() && window.readerboardViewer.caseId() !== {first_case}", timeout=60_000
    )
    assert "1 read" in page.locator("#my-stats").text_content()
    browser_page.screenshot("viewer-next-case.png")

    after = leaderboard(page, live_server.url)
    assert after["total_reads"] == before["total_reads"] + 1
    assert any(entry["display_name"] == "Dr Playwright" and entry["reads"] == 1 for entry in after["entries"])

    board = browser_page.context.new_page()
    board.goto(f"{live_server.url}/leaderboard/")
    assert "Dr Playwright" in board.locator("main").inner_text()
    board.close()

    read = Read.objects.get(reader__display_name="Dr Playwright")
    mark = Mark.objects.get(read=read)
    assert abs(mark.length_mm - E2E_LESION.long_axis_mm) <= 2.0
    assert MaskSlice.objects.filter(read=read).count() == 1
    assert not [e for e in browser_page.errors if "pageerror" in e], browser_page.errors


def draw_long_axis_across_lesion(page) -> float:
    """Go to the lesion slice, draw its long axis, return the length the page reports (mm)."""
    target = lesion_slice_index(page)
    page.locator("#slice-slider").fill(str(target + 1))
    page.wait_for_function(f"() => window.readerboardViewer.sliceIndex() === {target}")
    cx, cy, cz = E2E_LESION.center_mm
    half = E2E_LESION.diameters_mm[0] / 2
    drag(page, to_page_point(page, (cx - half, cy, cz)), to_page_point(page, (cx + half, cy, cz)))
    long_axis = page.locator("[data-testid=long-axis-mm]").first
    long_axis.wait_for()
    return float(long_axis.text_content())


def test_a_reload_keeps_the_drawing_and_a_submit_whose_answer_was_lost_is_stored_once(
    live_server, viewer_bundle, demo_task, browser_page
):
    from annotations.models import Read

    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Flaky Wifi")
    case_id = page.evaluate("() => window.readerboardViewer.caseId()")
    drawn_mm = draw_long_axis_across_lesion(page)
    page.locator("#comment").fill("lesion abuts the pleura")
    page.wait_for_function(
        "() => Object.keys(localStorage).some((k) => k.startsWith('readerboard:draft:') "
        "&& localStorage.getItem(k).includes('pleura'))"
    )

    page.reload()
    page.wait_for_function(READY, timeout=60_000)
    assert page.evaluate("() => window.readerboardViewer.caseId()") == case_id
    page.locator("[data-testid=long-axis-mm]").first.wait_for()
    assert float(page.locator("[data-testid=long-axis-mm]").first.text_content()) == drawn_mm
    assert page.locator("#comment").input_value() == "lesion abuts the pleura"

    # The server stores the read but the answer never reaches the page (booth Wi-Fi drops).
    lost = []

    def lose_the_answer(route):
        route.fetch()
        lost.append(route.request.post_data_json["client_uuid"])
        route.abort("connectionreset")

    page.route("**/api/reads/", lose_the_answer)
    page.locator("#submit").click()
    page.wait_for_function("() => !document.querySelector('#queue-banner').hidden")
    assert "queued" in page.locator("#queue-banner").text_content()
    browser_page.screenshot("viewer-queued.png")
    page.unroute("**/api/reads/")

    page.wait_for_function(
        f"() => window.readerboardViewer.ready() && window.readerboardViewer.caseId() !== {case_id}", timeout=60_000
    )
    reads = Read.objects.filter(reader__display_name="Flaky Wifi")
    assert [str(read.client_uuid) for read in reads] == lost[:1]
    assert reads.get().comment == "lesion abuts the pleura"
    assert page.locator("#queue-banner").is_hidden()
    assert not [e for e in browser_page.errors if "pageerror" in e], browser_page.errors


def test_tablet_layout_puts_the_panel_under_the_image_and_takes_no_lesion(
    live_server, viewer_bundle, demo_task, tablet_page
):
    from annotations.models import Read

    browser_page = tablet_page
    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Tablet Reader")
    viewer_box = page.locator("#viewport").bounding_box()
    panel_box = page.locator(".side-panel").bounding_box()
    assert panel_box["y"] >= viewer_box["y"] + viewer_box["height"] - 1, "panel sits below the image"
    assert viewer_box["width"] > 700

    page.locator("#toolbar-more").tap()  # secondary tools fold away on a portrait tablet
    page.locator("[data-action=help]").last.tap()
    assert page.locator("#shortcut-sheet").is_visible()
    assert "Undo" in page.locator("#shortcut-sheet").inner_text()
    page.keyboard.press("Escape")

    page.get_by_role("button", name="No measurable lesion").tap()
    browser_page.screenshot("viewer-tablet.png")
    case_id = page.evaluate("() => window.readerboardViewer.caseId()")
    page.locator("#submit").tap()
    page.wait_for_function(f"() => window.readerboardViewer.caseId() !== {case_id}", timeout=60_000)
    assert Read.objects.get(reader__display_name="Tablet Reader").no_lesion
