"""Time points: a patient's studies in date order, the series rule, and the follow-up part of the next case."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations.follow_up.time_points import (
    TimePointError,
    closest_series,
    create_follow_up_case,
    patient_timeline,
    series_by_rule,
    study_order_key,
)
from tests.annotations.follow_up_data import PATIENT_ID, build_follow_up_scene
from tests.factories import ReaderFactory
from viewer.models import Series, Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(tmp_path):
    return build_follow_up_scene(tmp_path)


def test_study_order_puts_date_then_time_first_and_undated_studies_last():
    keys = [
        study_order_key("20260302", "0900"),
        study_order_key("", ""),
        study_order_key("20260105", "101500"),
        study_order_key("20260105", "08:00:00"),
    ]

    assert sorted(range(4), key=keys.__getitem__) == [3, 2, 0, 1]


def test_the_case_orders_its_time_points_by_study_date_whatever_the_order_given(scene):
    points = list(scene.case.time_points.order_by("index"))

    assert [p.series_id for p in points] == [s.pk for s in scene.series]
    assert [p.label for p in points] == ["Baseline", "Follow-up 1", "Follow-up 2"]
    assert scene.case.series_id == scene.series[0].pk


def test_patient_timeline_lists_studies_in_time_order(scene):
    timeline = patient_timeline(patient_id=PATIENT_ID)

    assert [entry.iso_date for entry in timeline] == ["2026-01-05", "2026-03-02", "2026-05-04"]


def test_the_rule_picks_the_same_modality_and_the_closest_description(scene):
    baseline = scene.series[0]
    follow_up_study = scene.series[1].study
    other = Series.objects.create(
        series_instance_uid="1.2.3.99", study=follow_up_study, modality="CT", series_description="Scout"
    )
    mr = Series.objects.create(
        series_instance_uid="1.2.3.98",
        study=follow_up_study,
        modality="MR",
        series_description=baseline.series_description,
    )

    assert closest_series(reference=baseline, candidates=[other, mr, scene.series[1]]) == scene.series[1]
    assert series_by_rule(baseline=baseline) == scene.series


def test_a_follow_up_case_needs_one_patient_and_two_studies(scene):
    stranger = Study.objects.create(study_instance_uid="1.2.3.77", patient_id="SOMEONE-ELSE")
    foreign = Series.objects.create(series_instance_uid="1.2.3.78", study=stranger, modality="CT")

    with pytest.raises(TimePointError, match="one patient"):
        create_follow_up_case(task=scene.task, series=[scene.series[0], foreign])
    with pytest.raises(TimePointError, match="at least one follow-up"):
        create_follow_up_case(task=scene.task, series=[scene.series[0]])


def test_next_case_of_a_follow_up_task_gives_time_points_and_baseline_lesions(scene):
    client = APIClient()
    client.force_login(ReaderFactory().user)

    body = client.post(f"/api/tasks/{scene.task.pk}/next-case/").json()

    follow_up = body["follow_up"]
    assert body["task"]["kind"] == "follow_up"
    assert body["series_instance_uid"] == scene.series[0].series_instance_uid
    assert follow_up["baseline_source"] == "answer_key"
    assert [p["index"] for p in follow_up["time_points"]] == [0, 1, 2]
    assert [p["study_date"] for p in follow_up["time_points"]] == ["2026-01-05", "2026-03-02", "2026-05-04"]
    assert follow_up["time_points"][1]["series_instance_uid"] == scene.series[1].series_instance_uid
    assert len(follow_up["time_points"][2]["instances"]) == 9
    assert follow_up["time_points"][0]["instances"][0]["image_orientation_patient"] == [1, 0, 0, 0, 1, 0]
    assert [lesion["id"] for lesion in follow_up["baseline_lesions"]] == ["B1", "B2"]
    assert follow_up["baseline_lesions"][0]["site"] == "liver"
    assert follow_up["baseline_lesions"][0]["long_axis"]["length_mm"] == pytest.approx(20.0)


def test_next_case_of_a_single_task_has_no_follow_up_part(small_ct_series):
    from tests.factories import CaseFactory

    case = CaseFactory(series=small_ct_series)
    client = APIClient()
    client.force_login(ReaderFactory().user)

    body = client.post(f"/api/tasks/{case.task_id}/next-case/").json()

    assert body["task"]["kind"] == "single"
    assert "follow_up" not in body


def test_an_own_read_baseline_shows_each_reader_their_own_baseline_lesions(scene):
    from annotations.consensus.longitudinal_consensus import compute_follow_up_consensus
    from annotations.follow_up.time_points import baseline_lesions_for
    from annotations.models import Task
    from tests.annotations.export_data import add_line
    from tests.factories import CaseFactory, ReadFactory, TaskFactory

    baseline_task = TaskFactory()
    baseline_case = CaseFactory(task=baseline_task, series=scene.series[0])
    reader, other = ReaderFactory(), ReaderFactory()
    read = ReadFactory(case=baseline_case, reader=reader)
    add_line(read, lesion=1, kind="long_axis", instance=scene.middle(0), start=(13.5, 37.5), end=(33.5, 37.5))
    Task.objects.filter(pk=scene.task.pk).update(baseline_source="own_read", baseline_task=baseline_task)
    scene.case.refresh_from_db()

    mine = baseline_lesions_for(case=scene.case, reader=reader)

    assert [lesion["id"] for lesion in mine] == ["B1"]
    assert mine[0]["long_axis"]["length_mm"] == pytest.approx(20.0)
    assert mine[0]["center_patient_mm"] == pytest.approx([-8.0, 6.0, 0.0], abs=0.01)
    assert baseline_lesions_for(case=scene.case, reader=other) == []
    assert compute_follow_up_consensus(case=scene.case) is None  # no shared lesion identity to combine


def test_a_consensus_baseline_is_frozen_from_the_baseline_tasks_accepted_lesions(scene):
    from annotations.follow_up.time_points import baseline_lesions_for, freeze_consensus_baseline
    from annotations.models import CaseConsensus, ConsensusLesion, Task
    from tests.factories import CaseFactory, TaskFactory, line_json

    baseline_task = TaskFactory()
    baseline_case = CaseFactory(task=baseline_task, series=scene.series[0])
    consensus = CaseConsensus.objects.create(case=baseline_case, algorithm_version="2.0.0", inputs_hash="x")
    line = line_json(scene.middle(0), (13.5, 37.5), (33.5, 37.5))
    ConsensusLesion.objects.create(consensus=consensus, lesion_index=1, support=3, support_fraction=1, long_axis=line)
    ConsensusLesion.objects.create(consensus=consensus, lesion_index=2, support=1, support_fraction=0.3, accepted=False)
    Task.objects.filter(pk=scene.task.pk).update(baseline_source="consensus", baseline_task=baseline_task)
    scene.case.refresh_from_db()
    scene.case.baseline_lesions.all().delete()

    freeze_consensus_baseline(case=scene.case)
    consensus.lesions.update(long_axis=None)  # a later consensus change does not move the frozen baseline

    (lesion,) = baseline_lesions_for(case=scene.case, reader=None)
    assert lesion["id"] == "B1" and lesion["long_axis"]["length_mm"] == pytest.approx(20.0)
    assert lesion["center_patient_mm"] == pytest.approx([-8.0, 6.0, 0.0], abs=0.01)
