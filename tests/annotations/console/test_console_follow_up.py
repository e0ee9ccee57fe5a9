"""Console for follow-up tasks: creating one from baselines, a patient's timeline, results with inline SVG plots."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from annotations.assignment.services import next_case
from annotations.consensus.tasks import compute_case_consensus
from annotations.console.svg_plots import spider_svg, waterfall_svg
from annotations.models import Case, ReferenceLesion, Task
from annotations.reading.submission import submit_read
from tests.annotations.console.test_console_tasks import task_post
from tests.annotations.follow_up_data import (
    PATIENT_ID,
    build_follow_up_scene,
    follow_up_read,
    import_time_points,
    measured,
)
from tests.factories import ReaderFactory, admin_user

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


@pytest.mark.django_db
def test_an_admin_creates_a_follow_up_task_and_the_rule_adds_the_later_studies(admin_client, tmp_path):
    series = import_time_points(tmp_path)
    middle = list(series[0].instances.order_by("sort_position_mm"))[4]
    ReferenceLesion.objects.create(
        series=series[0], label="Liver", center_patient_mm=[-8.0, 6.0, 0.0], long_axis_mm=20.0,
        sop_instance_uid=middle.sop_instance_uid,
    )  # fmt: skip

    response = admin_client.post(
        reverse("console:task-create"),
        task_post(name="Follow-up 2026", series=[series[0].id], kind="follow_up", baseline_source="answer_key"),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get(name="Follow-up 2026")
    assert task.is_follow_up
    (case,) = Case.objects.filter(task=task)
    assert [point.series_id for point in case.time_points.order_by("index")] == [s.id for s in series]
    # The baseline series' reference lesion is the answer key: a line through its centre on its slice.
    (lesion,) = case.baseline_lesions.all()
    assert (lesion.key, lesion.label) == ("B1", "Liver")
    assert lesion.long_axis["sop_instance_uid"] == middle.sop_instance_uid
    assert lesion.long_axis["start"] == [13.5, 37.5] and lesion.long_axis["end"] == [33.5, 37.5]
    assert lesion.long_axis["length_mm"] == pytest.approx(20.0)


@pytest.mark.django_db
def test_a_follow_up_baseline_without_later_studies_is_refused(admin_client, small_ct_series):
    response = admin_client.post(
        reverse("console:task-create"), task_post(series=[small_ct_series.id], kind="follow_up")
    )

    assert response.status_code == 200
    assert "no later study" in response.content.decode()
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_the_patient_timeline_lists_studies_in_date_order(admin_client, tmp_path):
    import_time_points(tmp_path)

    page = admin_client.get(reverse("console:patient-timeline", args=[PATIENT_ID])).content.decode()

    section = page[page.index('id="patient-timeline"') :]
    svg = ET.fromstring(section[section.index("<svg") : section.index("</svg>") + 6])
    assert section.index("2026-01-05") < section.index("2026-03-02") < section.index("2026-05-04")
    dots = [float(circle.get("cx")) for circle in svg.findall(f"{SVG}circle")]
    assert len(dots) == 3 and dots == sorted(dots)


@pytest.mark.django_db
def test_follow_up_results_show_responses_agreement_and_plots(admin_client, tmp_path):
    scene = build_follow_up_scene(tmp_path)
    for b1 in (12.0, 13.0):
        reader = ReaderFactory()
        next_case(reader=reader, task=scene.task)
        points = [
            {
                "index": i,
                "lesions": [
                    measured(scene, i, 2 * i - 1, "B1", -8.0, 6.0, b1),
                    measured(scene, i, 2 * i, "B2", 14.0, -12.0, 15.0),
                ],
            }
            for i in (1, 2)
        ]
        submit_read(reader=reader, document=follow_up_read(scene, points))
    compute_case_consensus(scene.case.pk)

    page = admin_client.get(reverse("console:task-results", args=[scene.task.id])).content.decode()

    assert 'id="spider-plot"' in page and 'id="waterfall-plot"' in page and 'id="trajectory-plot"' in page
    assert "Fleiss" in page and "SD" in page
    assert 'data-format="seg"' not in page
    case_page = admin_client.get(reverse("console:case", args=[scene.task.id, scene.case.id]), follow=True)
    assert f"<h3>{scene.case.label}</h3>" in case_page.content.decode()


def test_the_waterfall_draws_a_bar_per_patient_largest_increase_first():
    svg = ET.fromstring(waterfall_svg([("A", -40.0, "PR"), ("B", 25.0, "PD"), ("C", -5.0, "SD")]))

    bars = svg.findall(f"{SVG}rect")
    assert [bar.find(f"{SVG}title").text.split(":")[0] for bar in bars] == ["B", "C", "A"]
    assert [bar.get("fill") for bar in bars] == ["#d73027", "#999999", "#66bd63"]


def test_the_spider_plot_starts_every_patient_at_zero():
    svg = ET.fromstring(spider_svg({"A": [(1, -20.0), (2, -35.0)], "B": [(1, 10.0), (2, None)]}))

    lines = svg.findall(f"{SVG}polyline")
    assert len(lines) == 2
    starts = {line.get("points").split()[0] for line in lines}
    assert len(starts) == 1  # the shared (baseline, 0 %) point
    assert len(lines[1].get("points").split()) == 2  # B: baseline and follow-up 1; no value at 2


@pytest.mark.django_db
def test_an_admin_picks_the_time_points_of_a_patient_by_hand(admin_client, tmp_path):
    series = import_time_points(tmp_path)

    admin_client.post(
        reverse("console:task-create"),
        task_post(name="Chosen points", series=[series[2].id, series[0].id], kind="follow_up"),
    )

    (case,) = Case.objects.filter(task__name="Chosen points")
    assert case.series_id == series[0].id
    assert [point.series_id for point in case.time_points.order_by("index")] == [series[0].id, series[2].id]
