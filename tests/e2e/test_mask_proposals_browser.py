"""Mask proposals in the reading page, in headless Chromium against a live server: draw a line, ask for the
mask, see it on several slices, correct one slice with the brush, submit, and find the proposal's provenance
in the stored read and a SEMIAUTOMATIC segment in the exported SEG."""

from __future__ import annotations

import io
import shutil
import zipfile

import pytest

from tests.e2e.conftest import E2E_LESION, ROOT
from tests.e2e.test_reading_page import (
    drag,
    draw_long_axis_across_lesion,
    lesion_slice_index,
    sign_up_and_open_reading,
    to_page_point,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def mask_summary(page) -> dict:
    return page.evaluate("() => window.readerboardViewer.maskSummary()")


def test_a_reader_asks_for_the_mask_of_a_line_corrects_it_and_submits_it_as_semi_automatic(
    live_server, viewer_bundle, demo_task, browser_page, tmp_path
):
    import highdicom as hd

    from annotations.exports import export_to_path
    from annotations.models import MaskProvenance, MaskSlice, Read

    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Dr Proposal")
    first_case = page.evaluate("() => window.readerboardViewer.caseId()")
    draw_long_axis_across_lesion(page)

    page.locator("[data-testid=propose-mask]").first.click()
    page.wait_for_function("() => /mask \\d+ slices/.test(document.querySelector('#lesion-list').textContent)")
    proposed = mask_summary(page)["1"]
    assert proposed["slices"] >= 3, proposed
    assert "Correct it with the brush" in page.locator("#form-message").text_content()

    shot = browser_page.screenshot("viewer-mask-proposal.png")
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "images" / "mask-proposal.png")

    # Correct the lesion's slice: a brush stroke just outside its lower edge adds pixels to lesion 1.
    cx, cy, cz = E2E_LESION.center_mm
    edge = E2E_LESION.diameters_mm[1] / 2
    page.keyboard.press("m")
    drag(page, to_page_point(page, (cx - 4, cy + edge + 1, cz)), to_page_point(page, (cx + 4, cy + edge + 2, cz)))
    page.wait_for_function(f"() => window.readerboardViewer.maskSummary()['1'].pixels > {proposed['pixels']}")
    assert page.evaluate("() => window.readerboardViewer.sliceIndex()") == lesion_slice_index(page)

    page.locator("#submit").click()
    page.wait_for_function(
        f"() => window.readerboardViewer.ready() && window.readerboardViewer.caseId() !== {first_case}", timeout=60_000
    )

    read = Read.objects.get(reader__display_name="Dr Proposal")
    assert MaskSlice.objects.filter(read=read).count() >= 3
    provenance = MaskProvenance.objects.get(read=read)
    assert (provenance.source, provenance.edited) == ("line", True)
    assert 0.5 < provenance.edit_dice < 1.0
    sent = read.document["lesions"][0]["mask"]["provenance"]
    assert set(sent) == {"source", "algorithm", "algorithm_version", "proposal"}

    archive = export_to_path(task=demo_task, fmt="seg", out=tmp_path / "seg.zip").path
    with zipfile.ZipFile(archive) as files:
        data = files.read(f"seg/case-{read.case_id}/read-{read.pk}-v1.dcm")
    description = hd.seg.segread(io.BytesIO(data)).get_segment_description(1)
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    assert description.algorithm_identification[0].AlgorithmName == provenance.algorithm
    assert not [error for error in browser_page.errors if "pageerror" in error], browser_page.errors


def test_a_tap_gives_the_mask_and_axes_that_agree_with_cornerstones_largest_bidirectional(
    live_server, viewer_bundle, demo_task, browser_page
):
    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, demo_task.pk, "Dr Tap")
    target = lesion_slice_index(page)
    page.locator("#slice-slider").fill(str(target + 1))
    page.wait_for_function(f"() => window.readerboardViewer.sliceIndex() === {target}")

    page.keyboard.press("t")
    page.mouse.click(*to_page_point(page, E2E_LESION.center_mm))
    page.wait_for_function("() => /mask \\d+ slices/.test(document.querySelector('#lesion-list').textContent)")

    lesion = page.evaluate("() => window.readerboardViewer.lesions()[0]")
    long_mm = lesion["axes"]["long_axis"]["length_mm"]
    short_mm = lesion["axes"]["short_axis"]["length_mm"]
    assert abs(long_mm - E2E_LESION.long_axis_mm) <= 3.0, long_mm
    assert abs(short_mm - E2E_LESION.short_axis_mm) <= 3.0, short_mm
    assert lesion["provenance"]["source"] == "tap"
    cornerstone = page.evaluate("(n) => window.readerboardViewer.largestBidirectional(n)", lesion["number"])
    assert cornerstone, "Cornerstone found no bidirectional in the mask"
    # The same mask measured by Cornerstone's worker: within one pixel (1 mm) of the server's axes
    # (seen: 23.19 x 15.14 mm from the server, 23.19 x 15.13 mm from Cornerstone).
    assert abs(cornerstone[0]["maxMajor"] - long_mm) <= 1.0, (cornerstone, long_mm)
    assert abs(cornerstone[0]["maxMinor"] - short_mm) <= 1.0, (cornerstone, short_mm)
    shutil.copyfile(browser_page.screenshot("viewer-mask-tap.png"), ROOT / "docs" / "images" / "mask-tap.png")

    # Re-propagate from the slice on screen: the mask stays on several slices and keeps its tap source.
    page.evaluate("() => { document.querySelector('#form-message').textContent = ''; }")
    page.keyboard.press("g")
    page.wait_for_function(
        "() => /Lesion \\d+: mask on \\d+ slices/.test(document.querySelector('#form-message').textContent)"
    )
    again = page.evaluate("() => window.readerboardViewer.lesions()[0]")
    assert len(again["maskSlices"]) >= 3 and again["provenance"]["source"] == "tap"
    assert not [error for error in browser_page.errors if "pageerror" in error], browser_page.errors
