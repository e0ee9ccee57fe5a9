"""The check-the-model suggestion of a full-size CT costs memory in proportion to the model's mask, not the series."""

from __future__ import annotations

import tracemalloc
import uuid

import numpy as np
import pytest
from rest_framework.test import APIClient

from annotations.core import mask_rle
from annotations.models import ModelPrediction, SuggestionReview
from annotations.predictions.suggestions import suggestion_document
from tests.factories import CaseFactory, ReaderFactory, SeriesFactory, TaskFactory
from viewer.models import Instance

pytestmark = pytest.mark.django_db

SLICES, ROWS, COLUMNS = 400, 512, 512
SLICE_MM, PIXEL_MM = 2.5, 0.75
# A volume of this series is 105 MB as booleans and 420 MB more as int32 labels; the suggestion must need neither
# (it peaks near 11 MB: the mask as flat voxel indices, a few arrays of its size and one slice's box at a time).
PEAK_LIMIT_BYTES = 25 * 1024 * 1024

# Two model lesions: a ball around slice 200 (centre column, row, radius in pixels and slices) and a long thin
# tube along the whole series (column, row), so the mask reaches from the first slice to the last.
BALL = (200, 256.0, 300.0, 40)
TUBE = (100, 80)


def full_size_ct_case(task):
    """A case on a 400-slice 512 x 512 axial CT series: instance rows only, no pixel files (none are read)."""
    series = SeriesFactory()
    Instance.objects.bulk_create(
        Instance(
            sop_instance_uid=f"1.2.826.0.1.3680043.10.1427.77.{series.pk}.{k}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            series=series,
            instance_number=k + 1,
            rows=ROWS,
            columns=COLUMNS,
            pixel_spacing_mm=[PIXEL_MM, PIXEL_MM],
            slice_thickness_mm=SLICE_MM,
            image_position_patient=[0.0, 0.0, SLICE_MM * k],
            image_orientation_patient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            sort_position_mm=SLICE_MM * k,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            file_path=f"none/{k}.dcm",
            file_size=0,
        )
        for k in range(SLICES)
    )
    return CaseFactory(task=task, series=series)


def model_mask_slices(instances: list[Instance]) -> tuple[list[dict], int]:
    """The model's mask of the two lesions, one run-length slice per painted slice, and its voxel count."""
    centre_slice, centre_column, centre_row, radius = BALL
    rr, cc = np.mgrid[0:ROWS, 0:COLUMNS]
    entries, voxels = [], 0
    for k, instance in enumerate(instances):
        plane = np.zeros((ROWS, COLUMNS), dtype=bool)
        plane[TUBE[1] : TUBE[1] + 3, TUBE[0] : TUBE[0] + 3] = True
        if abs(k - centre_slice) < radius / 2:
            in_plane = radius**2 - (2 * (k - centre_slice)) ** 2
            plane |= (cc - centre_column) ** 2 + (rr - centre_row) ** 2 <= in_plane
        entries.append({"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "counts": mask_rle.encode(plane)})
        voxels += int(plane.sum())
    return entries, voxels


@pytest.fixture
def full_size_prediction():
    task = TaskFactory(suggestion_model="seg-net", tools=["mask", "bidirectional"])
    case = full_size_ct_case(task)
    instances = list(case.series.instances.order_by("sort_position_mm"))
    mask_slices, voxels = model_mask_slices(instances)
    centre_slice, centre_column, centre_row, radius = BALL
    ModelPrediction.objects.create(
        case=case,
        model_name="seg-net",
        mask_slices=mask_slices,
        lesion_marks=[
            {
                "lesion": 1,
                "sop_instance_uid": instances[centre_slice].sop_instance_uid,
                "frame": 1,
                "long_axis": {"start": [centre_column - 30, centre_row], "end": [centre_column + 30, centre_row]},
                "short_axis": {"start": [centre_column, centre_row - 20], "end": [centre_column, centre_row + 20]},
            }
        ],
    )
    return case, voxels


def test_the_suggestion_of_a_400_slice_ct_never_holds_a_volume_in_memory(full_size_prediction):
    case, voxels = full_size_prediction

    tracemalloc.start()
    try:
        suggestion = suggestion_document(case=case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < PEAK_LIMIT_BYTES, f"peak {peak / 2**20:.0f} MB"
    tube, ball = suggestion["lesions"]  # numbered in raster order: the tube starts on slice 0
    assert len(tube["mask"]["slices"]) == SLICES and "long_axis" not in tube
    assert ball["long_axis"]["length_mm"] == pytest.approx(60 * PIXEL_MM)
    assert ball["short_axis"]["length_mm"] == pytest.approx(40 * PIXEL_MM)
    painted = sum(
        mask_rle.pixel_count(entry["counts"]) for lesion in (tube, ball) for entry in lesion["mask"]["slices"]
    )
    assert painted == voxels


def test_the_suggestion_of_a_400_slice_ct_submitted_as_it_is_is_a_valid_read_that_accepts_it_all(
    full_size_prediction,
):
    case, _ = full_size_prediction
    client = APIClient()
    client.force_login(ReaderFactory().user)
    taken = client.post(f"/api/tasks/{case.task_id}/next-case/")
    assert taken.status_code == 200, taken.content
    lesions = taken.json()["suggestion"]["lesions"]
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-12-07T10:31:02.120Z",
        "duration_s": 30.0,
        "flags": {},
        "lesions": lesions,
    }

    response = client.post("/api/reads/", document, format="json")

    assert response.status_code == 201, response.content
    verdicts = SuggestionReview.objects.filter(read_id=response.json()["read"]["id"])
    assert sorted((row.suggested_lesion, row.verdict) for row in verdicts) == [(1, "accepted"), (2, "accepted")]
