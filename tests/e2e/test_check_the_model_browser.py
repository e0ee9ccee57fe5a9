"""A "check the model" read in headless Chromium against a live server: a model predicted three lesions of a
small CT; a new reader sees them in the lesion list as the model's, rejects one, erases part of another,
keeps the third, adds a lesion of their own with a line, and the stored read holds exactly those three."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pytest

from tests.e2e.conftest import ROOT, e2e_patient
from tests.e2e.test_reading_page import READY, drag, sign_up_and_open_reading, to_page_point

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODEL = "nnunet-liver"


@dataclass(frozen=True)
class ModelLesion:
    """A cylinder the model predicts: in-plane centre and radius in LPS mm, over slices from z_min to z_max mm."""

    role: str
    center_mm: tuple[float, float]
    radius_mm: float
    z_mm: tuple[float, float]


# Apart in z, so each is its own 3-D component of the prediction (one suggested lesion each).
MODEL_LESIONS = (
    ModelLesion("edit", (-40.0, 20.0), 9.0, (-2.5, 2.5)),
    ModelLesion("reject", (40.0, -30.0), 6.0, (-10.0, -5.0)),
    ModelLesion("keep", (30.0, 40.0), 6.0, (5.0, 10.0)),
)


@dataclass
class CheckTheModelScene:
    task_id: int
    case_id: int
    # role -> {sop_instance_uid: bool [rows, columns]} of what the model predicted
    predicted: dict[str, dict[str, np.ndarray]]


def _write_prediction(case, path) -> dict[str, dict[str, np.ndarray]]:
    """Save a NIfTI of MODEL_LESIONS on the case's voxel grid (as nnU-Net would) and return each lesion's slices."""
    import nibabel as nib

    from annotations.exports.sources import SeriesSources
    from viewer.nifti.from_dicom import series_affine_lps
    from viewer.nifti.geometry import lps_to_ras
    from viewer.services.stored_files import local_path

    sources = SeriesSources.load(case.series)
    files = [local_path(instance) for instance in sources.instances]
    affine_lps = series_affine_lps(files)
    rows, columns = sources.instances[0].rows, sources.instances[0].columns
    column_index, row_index = np.meshgrid(np.arange(columns), np.arange(rows))
    data = np.zeros((columns, rows, len(files)), dtype=np.uint8)  # NIfTI voxel order: column, row, slice
    predicted: dict[str, dict[str, np.ndarray]] = {lesion.role: {} for lesion in MODEL_LESIONS}
    for k, instance in enumerate(sources.instances):
        voxels = np.stack([column_index, row_index, np.full_like(column_index, k), np.ones_like(column_index)])
        world = np.einsum("ij,jrc->irc", affine_lps, voxels)  # LPS mm of every pixel of slice k
        for lesion in MODEL_LESIONS:
            if not lesion.z_mm[0] - 0.01 <= world[2, 0, 0] <= lesion.z_mm[1] + 0.01:
                continue
            inside = np.hypot(world[0] - lesion.center_mm[0], world[1] - lesion.center_mm[1]) <= lesion.radius_mm
            predicted[lesion.role][instance.sop_instance_uid] = inside
            data[:, :, k] |= inside.T.astype(np.uint8)
    nib.save(nib.Nifti1Image(data, lps_to_ras(affine_lps)), path)
    return predicted


@pytest.fixture
def check_the_model(transactional_db, isolated_data_dir, tmp_path) -> CheckTheModelScene:
    """A one-case task with lines and masks whose readers start from MODEL's prediction of three lesions."""
    from annotations.demo.ct_demo import make_demo
    from annotations.models import Case, Task
    from annotations.predictions.services import show_to_readers, store_prediction

    demo = make_demo(patients=[e2e_patient(7)], include_odd_dicom=False, simulated_study=False, follow_up=False)
    series = Task.objects.get(pk=demo.task_id).cases.first().series
    task = Task.objects.create(
        name="Check the liver model",
        instructions_md="Accept, edit or reject each of the model's lesions, and add what it missed.",
        tools=["long_axis", "bidirectional", "mask", "no_lesion", "skip", "quality_problem"],
        reads_per_case=3,
    )
    case = Case.objects.create(task=task, series=series, label="Model case")
    predicted = _write_prediction(case, tmp_path / f"case_{case.pk}.nii.gz")
    prediction = store_prediction(case=case, model_name=MODEL, path=tmp_path / f"case_{case.pk}.nii.gz")
    assert prediction.voxel_count == sum(int(mask.sum()) for masks in predicted.values() for mask in masks.values())
    show_to_readers(task=task, model_name=MODEL)
    return CheckTheModelScene(task_id=task.pk, case_id=case.pk, predicted=predicted)


def _lesion_roles(page, scene: CheckTheModelScene) -> dict[str, int]:
    """role -> the page's lesion number, found from the SOP Instance UIDs each lesion's mask covers."""
    lesions = page.evaluate(
        """() => {
            const viewer = window.readerboardViewer;
            return viewer.lesions().map((lesion) => ({
                number: lesion.number,
                imageIds: lesion.maskSlices.map((slice) => slice.imageId),
            }));
        }"""
    )
    uid_of = page.evaluate(
        """() => Object.fromEntries(
            window.readerboardViewer.imageIds().map((id) => [id, id.split('/instances/')[1].split('/')[0]]))"""
    )
    roles = {}
    for lesion in lesions:
        uids = {uid_of[image_id] for image_id in lesion["imageIds"]}
        (role,) = [role for role, slices in scene.predicted.items() if set(slices) == uids]
        roles[role] = lesion["number"]
    return roles


def _row(page, number: int):
    return page.locator(f"#lesion-list [data-lesion='{number}']")


def _slice_at_z(page, z_mm: float) -> None:
    index = page.evaluate(
        """(z) => window.readerboardViewer.imageIds().findIndex(
            (id) => Math.abs(window.readerboardViewer.csUtils.imageToWorldCoords(id, [0, 0])[2] - z) < 0.01)""",
        z_mm,
    )
    assert index >= 0
    page.locator("#slice-slider").fill(str(index + 1))
    page.wait_for_function(f"() => window.readerboardViewer.sliceIndex() === {index}")


def test_a_reader_rejects_edits_and_keeps_the_models_lesions_and_adds_one_it_missed(
    live_server, viewer_bundle, check_the_model, browser_page
):
    from annotations.core import mask_rle
    from annotations.models import Mark, MaskSlice, Read

    scene = check_the_model
    page = browser_page.page
    sign_up_and_open_reading(browser_page, live_server.url, scene.task_id, "Dr Checker")

    # The three model lesions are drawn as the reader's own marks, each marked as the model's and accepted.
    expect_badges = page.locator("#lesion-list [data-testid=model-badge]")
    expect_badges.nth(2).wait_for()
    assert expect_badges.count() == 3
    assert f"Model {MODEL} drew 3 lesions" in page.get_by_test_id("model-note").text_content()
    roles = _lesion_roles(page, scene)
    assert page.evaluate("() => window.readerboardViewer.review()") == {str(n): "accepted" for n in roles.values()}
    # The case opened where the model's first lesion is, not on the series' first slice.
    first_role = min(roles, key=roles.get)
    shown_uid = page.evaluate(
        "() => { const v = window.readerboardViewer; return v.imageIds()[v.sliceIndex()].split('/instances/')[1]; }"
    ).split("/")[0]
    assert shown_uid in scene.predicted[first_role]
    summary = page.evaluate("() => window.readerboardViewer.maskSummary()")
    for role, number in roles.items():
        assert summary[str(number)]["pixels"] == sum(int(mask.sum()) for mask in scene.predicted[role].values())
    for number in roles.values():
        assert _row(page, number).get_by_role("button", name="Accept").get_attribute("aria-pressed") == "true"

    # From the keyboard, a rejection is taken back with Accept: the model's marks return exactly as drawn.
    keep_pixels = summary[str(roles["keep"])]["pixels"]
    _row(page, roles["keep"]).get_by_role("button", name="Reject").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => !window.readerboardViewer.maskSummary()[{roles['keep']}]")
    assert page.evaluate("() => document.activeElement.dataset.testid") == "reject-lesion"  # focus kept on re-render
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => window.readerboardViewer.review()[{roles['keep']}] === 'accepted'")
    assert page.evaluate("() => window.readerboardViewer.maskSummary()")[str(roles["keep"])]["pixels"] == keep_pixels

    # Reject one: its mask leaves every slice in one click, its row says so and Accept stays at hand.
    _row(page, roles["reject"]).get_by_role("button", name="Reject").click()
    page.wait_for_function(
        f"() => window.readerboardViewer.review()[{roles['reject']}] === 'rejected'"
        f" && !window.readerboardViewer.maskSummary()[{roles['reject']}]"
    )
    assert "rejected" in _row(page, roles["reject"]).inner_text()
    assert f"Lesion {roles['reject']} rejected" in page.locator("#form-message").text_content()
    # Undo puts it back as it was and Redo takes it away again.
    page.keyboard.press("Control+z")
    page.wait_for_function(f"() => window.readerboardViewer.review()[{roles['reject']}] === 'accepted'")
    restored = page.evaluate("() => window.readerboardViewer.maskSummary()")[str(roles["reject"])]
    assert restored == summary[str(roles["reject"])]
    page.keyboard.press("Control+y")
    page.wait_for_function(f"() => window.readerboardViewer.review()[{roles['reject']}] === 'rejected'")

    # Edit one: the eraser takes a bite out of its middle slice.
    edit = next(lesion for lesion in MODEL_LESIONS if lesion.role == "edit")
    _row(page, roles["edit"]).locator(".lesion-name").click()
    _slice_at_z(page, 0.0)
    page.keyboard.press("e")
    for _ in range(4):
        page.keyboard.press("[")  # a 4 px eraser: a bite, not the whole slice
    cx, cy = edit.center_mm
    drag(page, to_page_point(page, (cx - 4, cy, 0.0)), to_page_point(page, (cx + 4, cy, 0.0)))
    page.wait_for_function(f"() => window.readerboardViewer.review()[{roles['edit']}] === 'edited'")
    _row(page, roles["edit"]).locator("[data-testid=edited-badge]").wait_for()

    # Add what the model missed: a new lesion measured with a line, plain (no model badge).
    page.locator("#new-lesion").click()
    page.keyboard.press("l")
    drag(page, to_page_point(page, (-10.0, -20.0, 0.0)), to_page_point(page, (10.0, -20.0, 0.0)))
    added = max(roles.values()) + 1
    _row(page, added).locator("[data-testid=long-axis-mm]").wait_for()
    assert _row(page, added).locator("[data-testid=model-badge]").count() == 0
    assert _row(page, roles["keep"]).get_attribute("data-review") == "accepted"

    # A reload keeps which lesions are the model's and what the reader made of them (the draft).
    page.reload()
    page.wait_for_function(READY, timeout=60_000)
    _row(page, added).locator("[data-testid=long-axis-mm]").wait_for()
    assert page.evaluate("() => window.readerboardViewer.review()") == {
        str(roles["edit"]): "edited",
        str(roles["reject"]): "rejected",
        str(roles["keep"]): "accepted",
    }
    _slice_at_z(page, 0.0)
    shot = browser_page.screenshot("check-the-model.png")
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "images" / "check-the-model.png")

    page.locator("#submit").click()
    page.locator("#all-done").wait_for(timeout=60_000)

    read = Read.objects.get(reader__display_name="Dr Checker", case_id=scene.case_id)
    lesions = read.document["lesions"]
    assert len(lesions) == 3  # edited, kept, added; the rejected one is gone
    stored = {}
    for entry in MaskSlice.objects.filter(read=read).select_related("instance"):
        mask = mask_rle.decode(entry.counts, rows=entry.instance.rows, columns=entry.instance.columns)
        stored.setdefault(entry.lesion_index, {})[entry.instance.sop_instance_uid] = mask

    def stored_lesion(role: str) -> dict[str, np.ndarray]:
        (found,) = [slices for slices in stored.values() if set(slices) & set(scene.predicted[role])]
        return found

    kept = stored_lesion("keep")
    assert set(kept) == set(scene.predicted["keep"])
    assert all(np.array_equal(kept[uid], scene.predicted["keep"][uid]) for uid in kept)
    edited = stored_lesion("edit")
    edited_pixels = sum(int(mask.sum()) for mask in edited.values())
    predicted_pixels = sum(int(mask.sum()) for mask in scene.predicted["edit"].values())
    assert set(edited) == set(scene.predicted["edit"])  # a bite out of the middle slice, not all of it
    assert 0 < edited_pixels < predicted_pixels
    assert not any(set(slices) & set(scene.predicted["reject"]) for slices in stored.values())
    line = Mark.objects.get(read=read)
    assert abs(line.length_mm - 20.0) <= 1.5
    assert line.lesion_index not in stored  # the added lesion is the line alone
    assert not [error for error in browser_page.errors if "pageerror" in error], browser_page.errors


def test_on_a_tablet_the_review_buttons_are_finger_sized_and_a_tap_rejects(
    live_server, viewer_bundle, check_the_model, tablet_page
):
    page = tablet_page.page
    sign_up_and_open_reading(tablet_page, live_server.url, check_the_model.task_id, "Dr Tablet")
    page.locator("#lesion-list [data-testid=model-badge]").nth(2).wait_for()

    reject = _row(page, 2).get_by_role("button", name="Reject")
    reject.scroll_into_view_if_needed()
    box = reject.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44, box
    reject.tap()

    page.wait_for_function("() => window.readerboardViewer.review()[2] === 'rejected'")
    assert "2" not in page.evaluate("() => window.readerboardViewer.maskSummary()")
    tablet_page.screenshot("check-the-model-tablet.png")
    assert not [error for error in tablet_page.errors if "pageerror" in error], tablet_page.errors


def test_a_suggestions_recist_lines_are_editable_marks_that_reject_and_come_back(
    live_server, viewer_bundle, check_the_model, browser_page
):
    """Lines in the suggestion (read format, as a SR or CSV prediction gives them) draw as a Bidirectional."""
    uid = next(iter(check_the_model.predicted["edit"]))  # a slice the model's "edit" lesion covers
    long_axis = {"sop_instance_uid": uid, "frame": 1, "start": [40.0, 100.0], "end": [60.0, 100.0], "length_mm": 20.0}
    short_axis = {"sop_instance_uid": uid, "frame": 1, "start": [50.0, 95.0], "end": [50.0, 105.0], "length_mm": 10.0}

    def add_lines(route):
        answer = route.fetch()
        body = answer.json()
        if body and body.get("suggestion"):
            body["suggestion"]["lesions"].append({"lesion": 4, "long_axis": long_axis, "short_axis": short_axis})
        route.fulfill(response=answer, json=body)

    page = browser_page.page
    page.route("**/api/tasks/*/next-case/", add_lines)
    sign_up_and_open_reading(browser_page, live_server.url, check_the_model.task_id, "Dr Lines")
    _row(page, 4).locator("[data-testid=long-axis-mm]").wait_for()

    lesion = page.evaluate("() => window.readerboardViewer.lesions().find((item) => item.number === 4)")
    assert abs(lesion["axes"]["long_axis"]["length_mm"] - 20.0) < 0.05
    assert abs(lesion["axes"]["short_axis"]["length_mm"] - 10.0) < 0.05
    assert page.evaluate("() => window.readerboardViewer.review()")["4"] == "accepted"
    assert _row(page, 4).locator("[data-testid=model-badge]").count() == 1

    _row(page, 4).get_by_role("button", name="Reject").click()
    page.wait_for_function("() => !window.readerboardViewer.lesions().some((item) => item.number === 4)")
    _row(page, 4).get_by_role("button", name="Accept").click()
    page.wait_for_function("() => window.readerboardViewer.review()[4] === 'accepted'")
    back = page.evaluate("() => window.readerboardViewer.lesions().find((item) => item.number === 4)")
    assert back["axes"] == lesion["axes"]
    assert not [error for error in browser_page.errors if "pageerror" in error], browser_page.errors
