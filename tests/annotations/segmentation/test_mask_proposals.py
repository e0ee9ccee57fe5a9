"""Lesion mask proposals through the reading API (POST /api/cases/<id>/mask-proposals/): who may ask, what is
refused and why, a proposal's quality on a phantom of known geometry, re-propagation, taps, and the limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rest_framework.test import APIClient

from annotations.core import mask_rle
from annotations.segmentation import services as segmentation
from tests.factories import (
    CaseFactory,
    LeaseFactory,
    ReaderFactory,
    ReadFactory,
    TaskFactory,
    admin_user,
    line_json,
)
from viewer.services.synthetic_ct import SyntheticLesion, SyntheticPatient, tissue_at, write_series

pytestmark = pytest.mark.django_db

# A 24 x 18 x 15 mm soft-tissue nodule in the right lung (the liver lies below the left one) of a
# 128 x 128 x 31 CT (0.8 mm pixels, 2.5 mm slices).
LESION = SyntheticLesion(center_mm=(19.0, 0.0, 0.0), diameters_mm=(24.0, 18.0, 15.0), hu=40.0)
PHANTOM = SyntheticPatient(
    patient_id="RB-MASK-001",
    patient_name="Mask^Phantom",
    lesions=[LESION],
    rows=128,
    columns=128,
    slices=31,
    pixel_spacing_mm=0.8,
    slice_spacing_mm=2.5,
    seed=7,
)
MIN_DICE_3D = 0.8


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    return write_series(PHANTOM, tmp_path_factory.mktemp("mask-phantom"))


@pytest.fixture
def phantom_series(db, phantom_files):
    from viewer.models import Series
    from viewer.services.dicom_import import import_paths

    import_paths(phantom_files.files, collection_name="Mask phantom")
    return Series.objects.get(series_instance_uid=phantom_files.series_instance_uid)


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def truth_mask(instance, origin_mm) -> np.ndarray:
    """The lesion's pixels on this instance's slice, from the ellipsoid the phantom painted."""
    z = instance.image_position_patient[2]
    cx, cy, cz = LESION.center_mm
    ax, ay, az = (d / 2.0 for d in LESION.diameters_mm)
    dz = ((z - cz) / az) ** 2
    rows, cols = np.mgrid[: instance.rows, : instance.columns]
    x = origin_mm[0] + cols * PHANTOM.pixel_spacing_mm
    y = origin_mm[1] + rows * PHANTOM.pixel_spacing_mm
    if dz > 1.0:
        return np.zeros((instance.rows, instance.columns), dtype=bool)
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0 - dz


def to_pixel(point_mm, origin_mm) -> tuple[float, float]:
    return (
        (point_mm[0] - origin_mm[0]) / PHANTOM.pixel_spacing_mm,
        (point_mm[1] - origin_mm[1]) / PHANTOM.pixel_spacing_mm,
    )


def centre_instance(series):
    return min(series.instances.all(), key=lambda i: abs(i.image_position_patient[2] - LESION.center_mm[2]))


def long_axis_line(series, origin_mm, *, shift_mm=(0.0, 0.0)) -> dict:
    instance = centre_instance(series)
    cx, cy, _ = LESION.center_mm
    half = LESION.diameters_mm[0] / 2.0 - 1.0
    start = to_pixel((cx - half + shift_mm[0], cy + shift_mm[1]), origin_mm)
    end = to_pixel((cx + half + shift_mm[0], cy + shift_mm[1]), origin_mm)
    return line_json(instance, start, end)


def client_for(who) -> APIClient:
    """A signed-in client for a reader or a plain user (an admin without a reader profile)."""
    client = APIClient()
    client.force_login(getattr(who, "user", who))
    return client


@pytest.fixture
def leased(phantom_series):
    """A reader holding a live lease on a case of the phantom, and that case."""
    case = CaseFactory(series=phantom_series, task=TaskFactory(reads_per_case=2))
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader)
    return reader, case


def ask(reader, case, body: dict):
    return client_for(reader).post(f"/api/cases/{case.pk}/mask-proposals/", body, format="json")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def proposed_volume(answer: dict, series) -> dict[str, np.ndarray]:
    instances = {i.sop_instance_uid: i for i in series.instances.all()}
    return {
        entry["sop_instance_uid"]: mask_rle.decode(
            entry["counts"],
            rows=instances[entry["sop_instance_uid"]].rows,
            columns=instances[entry["sop_instance_uid"]].columns,
        )
        for entry in answer["mask"]["slices"]
    }


def volume_dice(answer: dict, series, origin_mm) -> float:
    proposed = proposed_volume(answer, series)
    overlap = total = 0
    for instance in series.instances.all():
        truth = truth_mask(instance, origin_mm)
        mask = proposed.get(instance.sop_instance_uid, np.zeros_like(truth))
        overlap += int((mask & truth).sum())
        total += int(mask.sum() + truth.sum())
    return 2.0 * overlap / total


# --- quality ------------------------------------------------------------------------------------


def test_a_line_across_the_lesion_gives_its_mask_through_its_slices(leased, phantom_series, phantom_files):
    reader, case = leased

    response = ask(reader, case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["prompt"] == "line"
    assert answer["algorithm"] == segmentation.ALGORITHM_NAME
    assert answer["algorithm_version"] == segmentation.ALGORITHM_VERSION
    assert len(answer["mask"]["slices"]) >= 3
    assert volume_dice(answer, phantom_series, phantom_files.origin_mm) > MIN_DICE_3D
    assert answer["long_axis"]["length_mm"] == pytest.approx(LESION.long_axis_mm, abs=3.0)


def test_the_slice_alone_when_propagation_is_off(leased, phantom_series, phantom_files):
    reader, case = leased
    line = long_axis_line(phantom_series, phantom_files.origin_mm)

    answer = ask(reader, case, {"long_axis": line, "propagate": False}).json()

    assert [entry["sop_instance_uid"] for entry in answer["mask"]["slices"]] == [line["sop_instance_uid"]]
    proposed = proposed_volume(answer, phantom_series)[line["sop_instance_uid"]]
    assert dice(proposed, truth_mask(centre_instance(phantom_series), phantom_files.origin_mm)) > 0.85


def test_a_tap_inside_the_lesion_gives_its_mask_and_recist_axes(leased, phantom_series, phantom_files):
    reader, case = leased
    instance = centre_instance(phantom_series)
    point = to_pixel(LESION.center_mm[:2], phantom_files.origin_mm)

    response = ask(reader, case, {"tap": {"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "point": point}})

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["prompt"] == "tap"
    assert volume_dice(answer, phantom_series, phantom_files.origin_mm) > MIN_DICE_3D
    assert answer["long_axis"]["length_mm"] == pytest.approx(LESION.long_axis_mm, abs=3.0)
    assert answer["short_axis"]["length_mm"] == pytest.approx(LESION.short_axis_mm, abs=3.0)
    assert answer["long_axis"]["sop_instance_uid"] == answer["largest"]["sop_instance_uid"]


def test_a_corrected_slice_is_propagated_again(leased, phantom_series, phantom_files):
    reader, case = leased
    instance = centre_instance(phantom_series)
    truth = truth_mask(instance, phantom_files.origin_mm)
    seed = {"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "counts": mask_rle.encode(truth)}

    response = ask(reader, case, {"seed_mask": seed})

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["prompt"] == "seed_mask"
    assert proposed_volume(answer, phantom_series)[instance.sop_instance_uid].tolist() == truth.tolist()
    assert len(answer["mask"]["slices"]) >= 3
    assert volume_dice(answer, phantom_series, phantom_files.origin_mm) > MIN_DICE_3D


# --- refusals -----------------------------------------------------------------------------------


def test_a_reader_without_a_lease_or_read_gets_404(phantom_series, phantom_files):
    case = CaseFactory(series=phantom_series, task=TaskFactory())
    stranger = ReaderFactory()

    response = ask(stranger, case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 404


def test_an_admin_writing_an_answer_key_gets_proposals_on_a_gold_case_without_a_lease(phantom_series, phantom_files):
    case = CaseFactory(series=phantom_series, task=TaskFactory(), is_gold=True)
    admin = admin_user()

    response = ask(admin, case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 200, response.json()
    assert volume_dice(response.json(), phantom_series, phantom_files.origin_mm) >= MIN_DICE_3D


def test_an_admin_gets_no_proposals_on_a_case_that_is_not_gold(phantom_series, phantom_files):
    case = CaseFactory(series=phantom_series, task=TaskFactory(), is_gold=False)

    response = ask(admin_user(), case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 404


def test_a_reader_without_a_lease_gets_404_on_a_gold_case_too(phantom_series, phantom_files):
    case = CaseFactory(series=phantom_series, task=TaskFactory(), is_gold=True)

    response = ask(ReaderFactory(), case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 404


def test_a_reader_who_read_the_case_may_ask_again(phantom_series, phantom_files):
    case = CaseFactory(series=phantom_series, task=TaskFactory())
    reader = ReaderFactory()
    ReadFactory(case=case, reader=reader)

    response = ask(reader, case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 200, response.json()


def test_a_line_outside_the_image_is_400_naming_the_end(leased, phantom_series, phantom_files):
    reader, case = leased
    line = long_axis_line(phantom_series, phantom_files.origin_mm)
    line = line_json(centre_instance(phantom_series), line["start"], (400.0, line["end"][1]))

    response = ask(reader, case, {"long_axis": line})

    assert response.status_code == 400
    assert "outside the image" in response.json()["errors"]["long_axis.end"][0]


def test_a_line_on_another_series_is_400(leased, small_ct_series, phantom_series):
    reader, case = leased
    other = small_ct_series.instances.first()

    response = ask(reader, case, {"long_axis": line_json(other, (10.0, 10.0), (20.0, 10.0))})

    assert response.status_code == 400
    assert response.json()["errors"] == {"long_axis.sop_instance_uid": ["is not an instance of this case's series"]}


def test_two_prompts_at_once_are_400(leased, phantom_series, phantom_files):
    reader, case = leased
    line = long_axis_line(phantom_series, phantom_files.origin_mm)
    tap = {"sop_instance_uid": line["sop_instance_uid"], "frame": 1, "point": line["start"]}

    response = ask(reader, case, {"long_axis": line, "tap": tap})

    assert response.status_code == 400
    assert "exactly one" in response.json()["errors"]["long_axis"][0]


def test_a_task_without_masks_refuses(phantom_series, phantom_files):
    case = CaseFactory(series=phantom_series, task=TaskFactory(tools=["long_axis", "skip"]))
    reader = ReaderFactory()
    LeaseFactory(case=case, reader=reader)

    response = ask(reader, case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 400
    assert response.json()["errors"] == {"case": ["the task does not offer lesion masks"]}


@pytest.mark.parametrize(
    ("where_mm", "tissue", "said"),
    [((0.0, 45.0), "air", "air or fat"), ((-19.0, -10.0), "lung", "air or fat"), ((0.0, 24.6), "bone", "bone")],
)
def test_a_tap_off_any_lesion_says_no_lesion_found(leased, phantom_series, phantom_files, where_mm, tissue, said):
    reader, case = leased
    instance = centre_instance(phantom_series)
    assert tissue_at(PHANTOM, (*where_mm, instance.image_position_patient[2])) == tissue
    point = to_pixel(where_mm, phantom_files.origin_mm)

    response = ask(reader, case, {"tap": {"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "point": point}})

    assert response.status_code == 422, response.json()
    assert response.json()["detail"].startswith("no lesion found here")
    assert said in response.json()["detail"]


def test_a_line_across_the_lung_says_no_lesion_found(leased, phantom_series, phantom_files):
    reader, case = leased

    line = long_axis_line(phantom_series, phantom_files.origin_mm, shift_mm=(0.0, -14.0))
    response = ask(reader, case, {"long_axis": line})

    assert response.status_code == 422
    assert "air or fat" in response.json()["detail"]


# --- limits -------------------------------------------------------------------------------------


def test_past_the_rate_limit_a_reader_gets_429_with_retry_after(leased, phantom_series, phantom_files, settings):
    settings.READERBOARD = {**settings.READERBOARD, "MASK_PROPOSALS_PER_MINUTE": 2}
    reader, case = leased
    other = ReaderFactory()
    LeaseFactory(case=case, reader=other)
    body = {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm), "propagate": False}

    codes = [ask(reader, case, body).status_code for _ in range(3)]
    refused = ask(reader, case, body)

    assert codes == [200, 200, 429]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert ask(other, case, body).status_code == 200


def test_a_proposal_past_its_time_budget_is_stopped_with_503(leased, phantom_series, phantom_files, settings):
    settings.READERBOARD = {**settings.READERBOARD, "MASK_PROPOSAL_TIME_BUDGET_S": 0}
    reader, case = leased

    response = ask(reader, case, {"long_axis": long_axis_line(phantom_series, phantom_files.origin_mm)})

    assert response.status_code == 503
    assert "longer than 0 s" in response.json()["detail"]


def test_only_the_slices_a_line_can_reach_are_loaded(leased, phantom_series, phantom_files, monkeypatch):
    reader, case = leased
    loaded = []
    original = segmentation.native_frame_array

    def counting(instance, *, frame_number):
        loaded.append(instance.pk)
        return original(instance, frame_number=frame_number)

    monkeypatch.setattr(segmentation, "native_frame_array", counting)
    line = long_axis_line(phantom_series, phantom_files.origin_mm)
    length = line["length_mm"]

    ask(reader, case, {"long_axis": line})

    reach = math.ceil(segmentation.LINE_DEPTH_PER_LINE * length / PHANTOM.slice_spacing_mm) + 1
    assert len(loaded) <= 2 * reach + 1 < PHANTOM.slices
