"""What a read of a "check the model" task made of the model's lesions, recorded by the server at submit."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile

import numpy as np
import pytest
from rest_framework.test import APIClient

from annotations.core import mask_rle
from annotations.exports import csv_export
from annotations.models import ModelPrediction, SuggestionReview
from tests.annotations.export_data import disc
from tests.factories import CaseFactory, ReaderFactory, TaskFactory, middle_instance, read_document

pytestmark = pytest.mark.django_db

# Three model lesions on the middle slice of the 64 x 64 CT, numbered 1, 2, 3 in the suggestion (label order).
MODEL_DISCS = [(15.0, 15.0), (45.0, 15.0), (15.0, 45.0)]


def masks_json(instance, *discs: tuple[tuple[float, float], float]) -> dict:
    painted = np.zeros((64, 64), dtype=bool)
    for centre, radius in discs:
        painted |= disc(64, 64, center=centre, radius=radius)
    return {"slices": [{"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "counts": mask_rle.encode(painted)}]}


@pytest.fixture
def check_the_model_case(small_ct_series):
    task = TaskFactory(suggestion_model="seg-net", reads_per_case=3)
    case = CaseFactory(task=task, series=small_ct_series)
    ModelPrediction.objects.create(
        case=case,
        model_name="seg-net",
        mask_slices=masks_json(middle_instance(case), *((centre, 4) for centre in MODEL_DISCS))["slices"],
    )
    return case


def reader_client() -> APIClient:
    client = APIClient()
    client.force_login(ReaderFactory().user)
    return client


def take_case(client: APIClient, case) -> dict:
    response = client.post(f"/api/tasks/{case.task_id}/next-case/")
    assert response.status_code == 200, response.content
    return response.json()


def reviewed_document(case, suggestion: dict) -> dict:
    """Keeps lesion 1 as drawn, shrinks lesion 2, erases lesion 3 and adds a lesion the model missed."""
    instance = middle_instance(case)
    kept = next(lesion for lesion in suggestion["lesions"] if lesion["lesion"] == 1)
    return {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-12-07T10:31:02.120Z",
        "duration_s": 30.0,
        "flags": {},
        "lesions": [
            kept,
            {"lesion": 2, "mask": masks_json(instance, (MODEL_DISCS[1], 3))},
            {"lesion": 4, "mask": masks_json(instance, ((45.0, 45.0), 3))},
        ],
    }


def verdicts(read_id: int) -> list[tuple]:
    return [
        (row.model_name, row.suggested_lesion, row.read_lesion, row.verdict)
        for row in SuggestionReview.objects.filter(read_id=read_id).order_by("verdict")
    ]


def test_a_read_that_accepts_edits_rejects_and_adds_stores_those_four_verdicts(check_the_model_case):
    client = reader_client()
    suggestion = take_case(client, check_the_model_case)["suggestion"]
    assert [lesion["lesion"] for lesion in suggestion["lesions"]] == [1, 2, 3]

    response = client.post("/api/reads/", reviewed_document(check_the_model_case, suggestion), format="json")

    assert response.status_code == 201, response.content
    read_id = response.json()["read"]["id"]
    assert verdicts(read_id) == [
        ("seg-net", 1, 1, "accepted"),
        ("seg-net", None, 4, "added"),
        ("seg-net", 2, 2, "edited"),
        ("seg-net", 3, None, "rejected"),
    ]
    accepted, edited = (SuggestionReview.objects.get(read_id=read_id, verdict=v) for v in ("accepted", "edited"))
    r3, r4 = (int(disc(64, 64, center=MODEL_DISCS[1], radius=radius).sum()) for radius in (3, 4))
    assert accepted.mask_dice == pytest.approx(1.0)
    assert edited.mask_dice == pytest.approx(2 * r3 / (r3 + r4))
    assert edited.long_axis_change_mm is None  # masks only: no line on either side


def test_a_double_submit_stores_the_verdicts_once(check_the_model_case):
    client = reader_client()
    document = reviewed_document(check_the_model_case, take_case(client, check_the_model_case)["suggestion"])

    first = client.post("/api/reads/", document, format="json")
    again = client.post("/api/reads/", document, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert SuggestionReview.objects.count() == 4


def test_a_new_version_of_a_read_gets_its_own_verdicts(check_the_model_case):
    client = reader_client()
    suggestion = take_case(client, check_the_model_case)["suggestion"]
    first = client.post("/api/reads/", reviewed_document(check_the_model_case, suggestion), format="json").json()
    corrected = {**reviewed_document(check_the_model_case, suggestion), "lesions": suggestion["lesions"]}

    second = client.post("/api/reads/", corrected, format="json").json()

    assert len(verdicts(first["read"]["id"])) == 4
    assert [row[3] for row in verdicts(second["read"]["id"])] == ["accepted"] * 3


def test_moved_line_ends_make_a_suggested_line_edited_and_the_change_is_in_mm(small_ct_series):
    from annotations.core.geometry import series_geometry
    from annotations.core.model_review import lesions_from_document, review_suggestion
    from tests.factories import line_json

    case = CaseFactory(series=small_ct_series)
    instance = middle_instance(case)
    geometry = series_geometry(case.series.instances.all())
    suggested = [
        {"lesion": 1, "long_axis": line_json(instance, (10, 10), (20, 10))},
        {"lesion": 2, "long_axis": line_json(instance, (40, 40), (50, 40))},
    ]
    drawn = [
        {"lesion": 1, "long_axis": line_json(instance, (20.5, 10.5), (10, 10))},  # ends swapped, within 1 px
        {"lesion": 2, "long_axis": line_json(instance, (40, 40), (53, 40))},  # one end moved 3 px
    ]

    result = review_suggestion(
        lesions_from_document(suggested, geometry=geometry),
        lesions_from_document(drawn, geometry=geometry),
        slice_spacing_mm=geometry.slice_spacing_mm,
    )

    assert [(v.suggested_lesion, v.verdict) for v in result] == [(1, "accepted"), (2, "edited")]
    assert result[1].long_axis_change_mm == pytest.approx(3.0)  # 1 mm pixels


def test_reads_outside_check_the_model_tasks_get_no_verdicts_and_empty_model_columns(small_ct_series):
    case = CaseFactory(series=small_ct_series, task=TaskFactory(reads_per_case=2))
    ModelPrediction.objects.create(case=case, model_name="seg-net", mask_slices=[])  # imported, not shown
    client = reader_client()
    take_case(client, case)

    response = client.post("/api/reads/", read_document(case), format="json")

    assert response.status_code == 201 and not SuggestionReview.objects.exists()
    lines = csv_export.iter_csv_lines(
        csv_export.iter_read_rows(task=case.task), columns=csv_export.read_columns(case.task)
    )
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    assert rows and all(row["model_origin"] == row["model_dice"] == "" for row in rows)


def test_the_exports_say_where_each_lesion_came_from_and_list_rejected_suggestions(check_the_model_case, tmp_path):
    from annotations.exports import export_to_path

    client = reader_client()
    suggestion = take_case(client, check_the_model_case)["suggestion"]
    client.post("/api/reads/", reviewed_document(check_the_model_case, suggestion), format="json")

    result = export_to_path(task=check_the_model_case.task, fmt="bundle", out=tmp_path)

    with zipfile.ZipFile(result.path) as archive:
        reads = list(csv.DictReader(io.StringIO(archive.read("reads.csv").decode())))
        review = list(csv.DictReader(io.StringIO(archive.read("model_review.csv").decode())))
        readme = archive.read("README.txt").decode()
    assert {(row["lesion_index"], row["model_origin"], row["model_lesion"]) for row in reads} == {
        ("1", "accepted", "1"),
        ("2", "edited", "2"),
        ("4", "added", ""),
    }
    assert sorted((row["verdict"], row["suggested_lesion"], row["read_lesion"]) for row in review) == [
        ("accepted", "1", "1"),
        ("added", "", "4"),
        ("edited", "2", "2"),
        ("rejected", "3", ""),
    ]
    assert review[0]["reader"].startswith("R-") and "model_review.csv" in readme


def test_a_models_lines_kept_or_moved_are_accepted_or_edited_with_the_change_in_mm(small_ct_series):
    task = TaskFactory(suggestion_model="recist-net", tools=["long_axis", "no_lesion"])
    case = CaseFactory(task=task, series=small_ct_series)
    uid = middle_instance(case).sop_instance_uid
    ModelPrediction.objects.create(
        case=case,
        model_name="recist-net",
        lesion_marks=[
            {"lesion": n, "sop_instance_uid": uid, "frame": 1, "long_axis": {"start": start, "end": end}}
            for n, (start, end) in enumerate([([10, 10], [20, 10]), ([40, 40], [50, 40])], start=1)
        ],
    )
    client = reader_client()
    lesions = take_case(client, case)["suggestion"]["lesions"]
    moved = {**lesions[1]["long_axis"], "end": [54.0, 40.0], "length_mm": 14.0}  # 1 mm pixels: 4 mm longer
    document = {
        "client_uuid": str(uuid.uuid4()),
        "case": case.pk,
        "started_at": "2026-12-07T10:31:02.120Z",
        "duration_s": 20.0,
        "flags": {},
        "lesions": [lesions[0], {**lesions[1], "long_axis": moved}],
    }

    response = client.post("/api/reads/", document, format="json")

    assert response.status_code == 201, response.content
    rows = SuggestionReview.objects.filter(read_id=response.json()["read"]["id"]).order_by("suggested_lesion")
    assert [(r.suggested_lesion, r.verdict, r.long_axis_change_mm, r.mask_dice) for r in rows] == [
        (1, "accepted", 0.0, None),
        (2, "edited", pytest.approx(4.0), None),
    ]
