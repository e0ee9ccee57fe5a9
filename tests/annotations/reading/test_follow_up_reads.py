"""Follow-up read submission: each baseline lesion once per time point, lines on that time point's series, RECIST."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations.models import FollowUpMeasurement, Mark, Read
from tests.annotations.follow_up_data import build_follow_up_scene, follow_up_read, measured
from tests.factories import CaseFactory, ReaderFactory, read_document

pytestmark = pytest.mark.django_db

B1, B2 = (-8.0, 6.0), (14.0, -12.0)


@pytest.fixture
def scene(tmp_path):
    return build_follow_up_scene(tmp_path)


@pytest.fixture
def client(scene):
    reader = ReaderFactory()
    api = APIClient()
    api.force_login(reader.user)
    assert api.post(f"/api/tasks/{scene.task.pk}/next-case/").status_code == 200
    api.reader = reader
    return api


def full_read(scene, *, tp2_new_lesion: bool = False, **overrides) -> dict:
    """Baseline B1 20 + B2 16 = 36 mm. Follow-up 1: 12 + 15 = 27 (-25 %, SD); follow-up 2: B1 gone, B2 15 (PR)."""
    second = [
        {"lesion": 3, "baseline_lesion": "B1", "status": "disappeared"},
        measured(scene, 2, 4, "B2", *B2, 15.0),
    ]
    if tp2_new_lesion:
        second.append({**measured(scene, 2, 5, None, -20.0, -15.0, 8.0), "site": "liver"})
    return follow_up_read(
        scene,
        [
            {"index": 1, "lesions": [measured(scene, 1, 1, "B1", *B1, 12.0), measured(scene, 1, 2, "B2", *B2, 15.0)]},
            {"index": 2, "lesions": second},
        ],
        **overrides,
    )


def test_a_follow_up_read_is_stored_with_its_time_points_and_answers_recist(scene, client):
    response = client.post("/api/reads/", full_read(scene), format="json")

    body = response.json()
    assert response.status_code == 201, body
    assert [(r["index"], r["response"]) for r in body["recist"]] == [(1, "SD"), (2, "PR")]
    assert body["recist"][0]["baseline_sum_mm"] == pytest.approx(36.0)
    assert body["recist"][0]["sum_mm"] == pytest.approx(27.0)
    assert body["recist"][0]["change_from_baseline_pct"] == pytest.approx(-25.0)
    assert body["recist"][1]["nadir_sum_mm"] == pytest.approx(27.0)
    read = Read.objects.get(pk=body["read"]["id"])
    rows = list(FollowUpMeasurement.objects.filter(read=read).values_list("time_point", "baseline_key", "status"))
    assert rows == [(1, "B1", "measured"), (1, "B2", "measured"), (2, "B1", "disappeared"), (2, "B2", "measured")]
    # Each line lies on its own time point's series.
    series_of_lesion = dict(Mark.objects.filter(read=read).values_list("lesion_index", "instance__series_id"))
    assert series_of_lesion == {1: scene.series[1].pk, 2: scene.series[1].pk, 4: scene.series[2].pk}


def test_a_new_lesion_makes_progression(scene, client):
    response = client.post("/api/reads/", full_read(scene, tp2_new_lesion=True), format="json")

    assert response.status_code == 201, response.json()
    assert [r["response"] for r in response.json()["recist"]] == ["SD", "PD"]
    assert FollowUpMeasurement.objects.get(is_new=True).site == "liver"


def test_a_retried_follow_up_read_stores_once_and_answers_the_same_recist(scene, client):
    document = full_read(scene)
    first = client.post("/api/reads/", document, format="json")

    again = client.post("/api/reads/", document, format="json")

    assert again.status_code == 200
    assert again.json()["recist"] == first.json()["recist"]
    assert Read.objects.count() == 1


def test_a_line_on_another_time_points_series_is_refused(scene, client):
    document = full_read(scene)
    document["time_points"][0]["lesions"][0] = measured(scene, 2, 1, "B1", *B1, 12.0)  # drawn on follow-up 2

    response = client.post("/api/reads/", document, format="json")

    assert response.status_code == 400
    assert "time_points[0].lesions[0].long_axis.sop_instance_uid" in response.json()["errors"]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda d: d["time_points"][0]["lesions"].pop(1), "time_points[0].lesions", "missing B2"),
        (
            lambda d: d["time_points"][0]["lesions"][1].update(baseline_lesion="B1"),
            "time_points[0].lesions[1].baseline_lesion",
            "measured twice",
        ),
        (lambda d: d["time_points"].pop(1), "time_points", "missing index [2]"),
        (
            lambda d: d["time_points"][1]["lesions"][0].update(
                long_axis=d["time_points"][1]["lesions"][1]["long_axis"]
            ),
            "time_points[1].lesions[0]",
            "carries no lines",
        ),
        (
            lambda d: d["time_points"][0]["lesions"][0].update(baseline_lesion="B9"),
            "time_points[0].lesions[0].baseline_lesion",
            "not a baseline lesion",
        ),
        (lambda d: d["time_points"][0].update(index=0), "time_points[0].index", "follow-up time point"),
        (
            lambda d: d["time_points"][1]["lesions"][1].update(lesion=1),
            "time_points[1].lesions[1].lesion",
            "used twice",
        ),
        (
            lambda d: d["time_points"][0]["lesions"][0].pop("long_axis"),
            "time_points[0].lesions[0].long_axis",
            "needs a long_axis",
        ),
        (lambda d: d["flags"].update(no_lesion=True), "flags.no_lesion", "not used in follow-up reads"),
    ],
    ids=[
        "missing",
        "twice",
        "time point missing",
        "lines on gone",
        "unknown key",
        "baseline index",
        "number",
        "no line",
        "no lesion",
    ],
)
def test_a_broken_follow_up_read_is_refused_by_json_path(scene, client, change, path, message):
    document = full_read(scene)
    change(document)

    response = client.post("/api/reads/", document, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert path in errors, errors
    assert any(message in text for text in errors[path]), errors[path]
    assert Read.objects.count() == 0


def test_a_follow_up_case_can_be_skipped(scene, client):
    document = follow_up_read(scene, [], flags={"skip": True})

    response = client.post("/api/reads/", document, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["recist"] == []


def test_lesions_on_a_follow_up_case_and_time_points_on_a_single_case_are_refused(scene, client, small_ct_series):
    single_case = CaseFactory(series=small_ct_series)
    as_single = {**read_document(single_case), "case": scene.case.pk}
    as_follow_up = full_read(scene, case=single_case.pk)

    assert "lesions" in client.post("/api/reads/", as_single, format="json").json()["errors"]
    assert "time_points" in client.post("/api/reads/", as_follow_up, format="json").json()["errors"]
