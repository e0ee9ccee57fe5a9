"""Follow-up reading in a real headless Chromium against a live server: a reader opens a follow-up
case, sees the baseline lesion, links and scrolls the two viewports, measures the lesion again at
the first follow-up and adds a new lesion there, marks the lesion disappeared at the second, submits,
and sees the RECIST responses the server computed: a new lesion is progressive disease whatever the
sum does (follow-up 1), and a target gone with nothing new is a complete response (follow-up 2)."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_reading_page import drag, sign_up_and_open_reading
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, write_series

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The tracked lesion shrinks from 24 to 20 mm (-16.7 %: stable by size); a 14 mm lesion is new at follow-up.
TRACKED_AT_BASELINE = SyntheticLesion(center_mm=(-40.0, 20.0, 0.0), diameters_mm=(24.0, 16.0, 14.0), hu=30.0)
TRACKED_AT_FOLLOW_UP = SyntheticLesion(center_mm=(-40.0, 20.0, 0.0), diameters_mm=(20.0, 14.0, 12.0), hu=30.0)
NEW_AT_FOLLOW_UP = SyntheticLesion(center_mm=(35.0, -30.0, 0.0), diameters_mm=(14.0, 12.0, 10.0), hu=35.0)
BASELINE_DATE = dt.datetime(2026, 1, 5, 10, 15)
FOLLOW_UP_DATE = dt.datetime(2026, 3, 2, 9, 0)
SECOND_FOLLOW_UP_DATE = dt.datetime(2026, 5, 4, 14, 30)
FOLLOW_UP = "window.readerboardViewer.followUp()"


def _patient(lesions: list[SyntheticLesion], *, slices: int, slice_spacing_mm: float) -> SyntheticPatient:
    return SyntheticPatient(
        patient_id="RB-E2E-FU",
        patient_name="E2E^FollowUp",
        lesions=lesions,
        rows=192,
        columns=192,
        slices=slices,
        pixel_spacing_mm=1.0,
        slice_spacing_mm=slice_spacing_mm,
        seed=11,
    )


@pytest.fixture
def follow_up_task(transactional_db, isolated_data_dir, tmp_path):
    """One patient at three dates: follow-up 1 in another frame of reference (and slice spacing),
    follow-up 2 in the baseline's; a follow-up task whose answer key is the baseline lesion's long axis."""
    import pydicom

    from annotations.follow_up.time_points import create_follow_up_case
    from annotations.models import BaselineLesion, Task
    from tests.factories import TaskFactory, line_json
    from viewer.models import Series
    from viewer.services.dicom_import import import_paths

    baseline_written = write_series(
        _patient([TRACKED_AT_BASELINE], slices=11, slice_spacing_mm=2.5),
        tmp_path / "baseline",
        uid_seed="e2e-fu-baseline",
        study_datetime=BASELINE_DATE,
    )
    follow_up_written = write_series(
        _patient([TRACKED_AT_FOLLOW_UP, NEW_AT_FOLLOW_UP], slices=9, slice_spacing_mm=3.0),
        tmp_path / "follow-up",
        uid_seed="e2e-fu-follow-up",
        study_datetime=FOLLOW_UP_DATE,
    )
    second_written = write_series(
        _patient([], slices=11, slice_spacing_mm=2.5),
        tmp_path / "follow-up-2",
        uid_seed="e2e-fu-follow-up-2",
        study_datetime=SECOND_FOLLOW_UP_DATE,
    )
    # Same scanner coordinates as the baseline: scrolling is linked without a landmark.
    baseline_frame = pydicom.dcmread(baseline_written.files[0], stop_before_pixels=True).FrameOfReferenceUID
    for path in second_written.files:
        dataset = pydicom.dcmread(path)
        dataset.FrameOfReferenceUID = baseline_frame
        dataset.save_as(path)
    series = []
    # Out of order: the case sorts them by study date.
    for written in (follow_up_written, second_written, baseline_written):
        import_paths(written.files, collection_name="Follow-up e2e")
        series.append(Series.objects.get(series_instance_uid=written.series_instance_uid))
    task = TaskFactory(
        name="Follow-up RECIST",
        kind=Task.Kind.FOLLOW_UP,
        baseline_source=Task.BaselineSource.ANSWER_KEY,
        instructions_md="Measure each baseline lesion again at follow-up; add new lesions.",
        tools=["long_axis", "bidirectional", "skip", "quality_problem"],
    )
    case = create_follow_up_case(task=task, series=series, label="Patient FU")
    baseline_series = series[2]
    centre = baseline_series.instances.get(sop_instance_uid=baseline_written.sop_instance_uids[5])  # z = 0
    x0, y0 = baseline_written.origin_mm
    cx, cy, _ = TRACKED_AT_BASELINE.center_mm
    half = TRACKED_AT_BASELINE.diameters_mm[0] / 2
    BaselineLesion.objects.create(
        case=case,
        key="B1",
        label="Lesion 1",
        site="lung",
        long_axis=line_json(centre, (cx - half - x0, cy - y0), (cx + half - x0, cy - y0)),
        center_patient_mm=list(TRACKED_AT_BASELINE.center_mm),
    )
    return task


def to_page_point(page, world_mm, which: str) -> tuple[float, float]:
    """Screen position of a patient-space point on the 'baseline' or 'followUp' viewport."""
    return page.evaluate(
        f"""(world) => {{
            const viewport = window.readerboardViewer.followUp().{which}Viewport();
            const [x, y] = viewport.worldToCanvas(world);
            const rect = viewport.element.getBoundingClientRect();
            return [rect.left + x, rect.top + y];
        }}""",
        list(world_mm),
    )


def slice_z(page, which: str) -> list[float]:
    """z (mm) of every slice of a viewport's stack, in stack order."""
    return page.evaluate(
        f"""() => {{
            const handle = window.readerboardViewer;
            return handle.followUp().{which}ImageIds().map((id) => handle.csUtils.imageToWorldCoords(id, [0, 0])[2]);
        }}"""
    )


def index_of(page, which: str) -> int:
    return page.evaluate(f"{FOLLOW_UP}.{which}Index()")


def nearest(zs: list[float], z: float) -> int:
    return min(range(len(zs)), key=lambda k: (abs(zs[k] - z), k))


def test_reader_follows_the_baseline_lesion_adds_a_new_one_and_gets_progressive_disease(
    live_server, viewer_bundle, follow_up_task, browser_page
):
    from annotations.models import FollowUpMeasurement, Mark, Read

    page = browser_page.page
    try:
        sign_up_and_open_reading(browser_page, live_server.url, follow_up_task.pk, "Dr Follow")
    except Exception:
        print("page errors:", browser_page.errors, "status:", page.locator("#viewer-status").text_content())
        raise
    page.wait_for_function(f"() => {FOLLOW_UP} && {FOLLOW_UP}.active()")
    baseline_z = slice_z(page, "baseline")
    follow_up_z = slice_z(page, "followUp")
    assert (len(baseline_z), len(follow_up_z)) == (11, 9)
    # Both stacks are prefetched, though they share Cornerstone's one prefetch queue.
    page.wait_for_function(
        f"() => window.readerboardViewer.cachedFraction() === 1 && {FOLLOW_UP}.followUpCachedFraction() === 1"
    )

    # The baseline lesion: listed, drawn read-only on the baseline, and the baseline opens on its slice.
    panel = page.locator("[data-testid=follow-up-list]")
    assert "B1 · Lesion 1 (lung)" in panel.inner_text()
    assert "to do" in panel.inner_text()
    shown = page.evaluate(f"{FOLLOW_UP}.baselineAnnotations()")
    assert [(item["id"], item["locked"]) for item in shown] == [("B1", True)]
    assert baseline_z[index_of(page, "baseline")] == pytest.approx(0.0, abs=0.01)
    assert "Baseline · 2026-01-05" in page.locator("[data-testid=baseline-title]").text_content()
    assert "Follow-up 1 · 2026-03-02" in page.locator("[data-testid=follow-up-title]").text_content()

    # Two frames of reference: not linked until the reader aligns a landmark (here both at z = 0).
    assert "Not linked" in page.locator("[data-testid=link-status]").text_content()
    follow_up_box = page.locator("[data-testid=viewport-follow-up]").bounding_box()
    follow_up_centre = (
        follow_up_box["x"] + follow_up_box["width"] / 2,
        follow_up_box["y"] + follow_up_box["height"] / 2,
    )
    start = index_of(page, "followUp")
    page.mouse.move(*follow_up_centre)
    page.mouse.wheel(0, 120)
    page.wait_for_function(f"() => {FOLLOW_UP}.followUpIndex() !== {start}")
    assert baseline_z[index_of(page, "baseline")] == pytest.approx(0.0, abs=0.01), "unlinked: the baseline stays"
    page.mouse.wheel(0, -120)
    page.wait_for_function(f"() => {FOLLOW_UP}.followUpIndex() === {start}")
    assert follow_up_z[start] == pytest.approx(0.0, abs=0.01)
    page.get_by_role("button", name="Link here").click()
    assert "Linked at a landmark" in page.locator("[data-testid=link-status]").text_content()

    # Linked: the wheel on the follow-up moves the baseline to the slice nearest in patient position ...
    for steps in (1, 2):
        page.mouse.move(*follow_up_centre)
        page.mouse.wheel(0, 120)
        page.wait_for_function(f"() => {FOLLOW_UP}.followUpIndex() === {start} + {steps}")
        expected = nearest(baseline_z, follow_up_z[start + steps])
        page.wait_for_function(f"() => {FOLLOW_UP}.baselineIndex() === {expected}")
    # ... and the baseline's slider moves the follow-up.
    page.locator("#slice-slider").fill("2")
    page.wait_for_function(f"() => {FOLLOW_UP}.baselineIndex() === 1")
    expected = nearest(follow_up_z, baseline_z[1])
    page.wait_for_function(f"() => {FOLLOW_UP}.followUpIndex() === {expected}")

    # Jump to the lesion moves both back to z = 0.
    panel.get_by_role("button", name="B1 · Lesion 1 (lung)").click()
    page.wait_for_function(f"() => {FOLLOW_UP}.followUpIndex() === {start}")
    assert baseline_z[index_of(page, "baseline")] == pytest.approx(0.0, abs=0.01)

    # Submit is blocked while B1 has no status, and says which lesion.
    page.locator("#submit").click()
    refusal = page.locator("#form-message").text_content()
    assert "Lesion 1 (B1) at Follow-up 1" in refusal and "Lesion 1 (B1) at Follow-up 2" in refusal, refusal

    # Measure B1 at follow-up (B1 is the lesion in hand), then a new lesion.
    cx, cy, cz = TRACKED_AT_FOLLOW_UP.center_mm
    half = TRACKED_AT_FOLLOW_UP.diameters_mm[0] / 2
    drag(
        page, to_page_point(page, (cx - half, cy, cz), "followUp"), to_page_point(page, (cx + half, cy, cz), "followUp")
    )
    page.locator("[data-testid=follow-up-mm]").wait_for()
    assert float(page.locator("[data-testid=follow-up-mm]").text_content()) == pytest.approx(20.0, abs=2.0)
    page.locator("#follow-up-new-lesion").click()
    nx, ny, nz = NEW_AT_FOLLOW_UP.center_mm
    half = NEW_AT_FOLLOW_UP.diameters_mm[0] / 2
    drag(
        page, to_page_point(page, (nx - half, ny, nz), "followUp"), to_page_point(page, (nx + half, ny, nz), "followUp")
    )
    page.locator("[data-testid=new-lesion-mm]").wait_for()
    assert float(page.locator("[data-testid=new-lesion-mm]").text_content()) == pytest.approx(14.0, abs=2.0)
    assert "1 of 1 done" in page.locator("#follow-up-heading").text_content()

    # A reload keeps the follow-up read: both measurements, what they are tied to, and the landmark link.
    page.wait_for_function(
        "() => Object.keys(localStorage).some((k) => k.startsWith('readerboard:draft:') "
        "&& (localStorage.getItem(k).match(/readerboardFollowUp/g) || []).length === 2)"
    )
    page.reload()
    page.wait_for_function(f"() => window.readerboardViewer?.ready() && {FOLLOW_UP}?.active()", timeout=60_000)
    page.locator("[data-testid=new-lesion-mm]").wait_for()
    assert "1 of 1 done" in page.locator("#follow-up-heading").text_content()
    assert float(page.locator("[data-testid=follow-up-mm]").text_content()) == pytest.approx(20.0, abs=2.0)
    assert "Linked at a landmark" in page.locator("[data-testid=link-status]").text_content()

    shot = browser_page.screenshot("follow-up-desktop.png")
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "images" / "follow-up.png")
    # On a phone the two viewports stack, baseline on top.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function(
        "() => document.querySelector('[data-testid=viewport-follow-up]').getBoundingClientRect().top >"
        " document.querySelector('#viewport').getBoundingClientRect().bottom - 1"
    )
    page.wait_for_timeout(300)
    browser_page.screenshot("follow-up-phone.png")
    page.set_viewport_size({"width": 1440, "height": 900})

    # Follow-up 2 shares the baseline's frame of reference: linked at once, scrolling follows both ways.
    page.locator("[data-testid=time-point-select]").select_option(label="Follow-up 2 · 2026-05-04")
    page.wait_for_function("() => document.querySelector('#follow-up-title').textContent.includes('Follow-up 2')")
    assert "same frame of reference" in page.locator("[data-testid=link-status]").text_content()
    assert "0 of 1 done" in page.locator("#follow-up-heading").text_content()
    second_z = slice_z(page, "followUp")
    page.mouse.move(*follow_up_centre)
    page.mouse.wheel(0, 120)
    page.wait_for_function(f"() => {FOLLOW_UP}.followUpIndex() !== {nearest(second_z, 0.0)}")
    moved_to = second_z[index_of(page, "followUp")]
    page.wait_for_function(f"() => {FOLLOW_UP}.baselineIndex() === {nearest(baseline_z, moved_to)}")

    # Window/level: presets act on the follow-up (the viewport in hand); linked, the baseline follows.
    baseline_window = page.locator("#window-label").text_content()
    page.get_by_role("button", name="Lung", exact=True).click()
    assert page.locator("#window-label").text_content() == baseline_window
    page.locator("#link-window").check()
    page.get_by_role("button", name="Liver", exact=True).click()
    page.wait_for_function("() => document.querySelector('#window-label').textContent === 'W 160 · L 60'")

    panel.get_by_role("button", name="Disappeared").click()
    assert "1 of 1 done" in page.locator("#follow-up-heading").text_content()
    browser_page.screenshot("follow-up-second.png")

    page.locator("#submit").click()
    result = page.locator("[data-testid=follow-up-result]")
    result.wait_for(state="visible", timeout=60_000)
    lines = page.locator("[data-testid=recist-line]")
    assert lines.count() == 2
    assert lines.nth(0).get_attribute("data-response") == "PD", lines.nth(0).text_content()
    assert "1 new lesion" in lines.nth(0).text_content()
    assert lines.nth(1).get_attribute("data-response") == "CR", lines.nth(1).text_content()
    browser_page.screenshot("follow-up-result.png")

    read = Read.objects.get(reader__display_name="Dr Follow")
    lengths = {mark.lesion_index: mark.length_mm for mark in Mark.objects.filter(read=read)}
    stored = sorted(
        (m.time_point, m.baseline_key, m.is_new, m.status, round(lengths.get(m.lesion_index, 0)))
        for m in FollowUpMeasurement.objects.filter(read=read)
    )
    assert stored == [
        (1, "", True, "measured", 14),
        (1, "B1", False, "measured", 20),
        (2, "B1", False, "disappeared", 0),
    ]
    assert not [e for e in browser_page.errors if "pageerror" in e], browser_page.errors
