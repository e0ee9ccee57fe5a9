"""Creating and editing tasks through the console page, with cases, gold cases and reference answers."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Case, ReferenceLesion, Task
from annotations.models.tasks import Tool
from tests.factories import ReaderFactory, ReadFactory, admin_user
from viewer.models import Series


def task_post(**overrides) -> dict:
    data = {
        "name": "Liver lesions 2026",
        "instructions_md": "Measure **every** target lesion.",
        "tools": [Tool.LONG_AXIS, Tool.BIDIRECTIONAL, Tool.NO_LESION],
        "reads_per_case": "4",
        "max_lesions_per_case": "",
        "consensus_method": "majority",
        "min_support": "2",
        "finding": "Neoplasm",
        "is_open": "on",
        "ref-TOTAL_FORMS": "0",
        "ref-INITIAL_FORMS": "0",
        "ref-MIN_NUM_FORMS": "0",
        "ref-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


@pytest.mark.django_db
def test_an_admin_creates_a_task_with_a_gold_case_and_its_reference_lengths_through_the_page(
    admin_client, small_ct_series
):
    instance = small_ct_series.instances.order_by("sort_position_mm")[4]
    response = admin_client.post(
        reverse("console:task-create"),
        task_post(
            series=[small_ct_series.id],
            gold_series=[small_ct_series.id],
            **{
                "ref-TOTAL_FORMS": "1",
                "ref-0-series": str(small_ct_series.id),
                "ref-0-label": "liver dome",
                "ref-0-long_axis_mm": "16.0",
                "ref-0-short_axis_mm": "10.0",
                "ref-0-sop_instance_uid": instance.sop_instance_uid,
            },
        ),
    )

    task = Task.objects.get(name="Liver lesions 2026")
    assert response.status_code == 302
    assert response["Location"] == reverse("console:task-dashboard", args=[task.id])
    assert (task.reads_per_case, task.consensus_method, task.min_support, task.is_open) == (4, "majority", 2, True)
    assert task.tools == ["long_axis", "bidirectional", "no_lesion"]
    case = Case.objects.get(task=task)
    assert (case.series_id, case.is_gold, case.label) == (small_ct_series.id, True, "Case 1")
    reference = ReferenceLesion.objects.get(series=small_ct_series, source="admin")
    assert (reference.long_axis_mm, reference.short_axis_mm, reference.label) == (16.0, 10.0, "liver dome")
    assert reference.sop_instance_uid == instance.sop_instance_uid
    # The stand-in centre lies on the chosen slice.
    assert reference.center_patient_mm[2] == pytest.approx(instance.image_position_patient[2])


@pytest.mark.django_db
def test_picking_a_collection_makes_a_case_of_each_of_its_series(admin_client, small_ct_series):
    collection_id = small_ct_series.study.collection_id

    admin_client.post(reverse("console:task-create"), task_post(collections=[collection_id]))

    task = Task.objects.get(name="Liver lesions 2026")
    expected = set(Series.objects.filter(study__collection_id=collection_id).values_list("id", flat=True))
    assert set(task.cases.values_list("series_id", flat=True)) == expected


@pytest.mark.django_db
def test_the_form_refuses_a_task_without_series_or_with_support_above_the_reads(admin_client, small_ct_series):
    no_series = admin_client.post(reverse("console:task-create"), task_post())
    too_much_support = admin_client.post(
        reverse("console:task-create"), task_post(series=[small_ct_series.id], min_support="9")
    )

    assert no_series.status_code == too_much_support.status_code == 200
    assert "Pick at least one series or collection." in no_series.content.decode()
    assert "At most the reads per case (4)." in too_much_support.content.decode()
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_a_task_without_a_drawing_tool_is_refused(admin_client, small_ct_series):
    response = admin_client.post(
        reverse("console:task-create"), task_post(series=[small_ct_series.id], tools=[Tool.NO_LESION, Tool.SKIP])
    )

    assert "choose at least one drawing tool" in response.content.decode()
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_editing_keeps_cases_that_already_have_reads(admin_client, small_ct_series, small_ct_files, tmp_path):
    admin_client.post(reverse("console:task-create"), task_post(series=[small_ct_series.id]))
    task = Task.objects.get()
    case = task.cases.get()
    ReadFactory(case=case, reader=ReaderFactory())

    response = admin_client.post(
        reverse("console:task-edit", args=[task.id]),
        task_post(name="Renamed", collections=[], series=[], reads_per_case="3"),
    )
    assert "Pick at least one series" in response.content.decode()

    from tests.conftest import small_patient
    from viewer.services.dicom_import import import_paths
    from viewer.services.synthetic_ct import write_series

    other = write_series(small_patient("RB-TEST-002", seed=2), tmp_path / "other")
    import_paths(other.files, collection_name="Other")
    other_series = Series.objects.get(series_instance_uid=other.series_instance_uid)
    admin_client.post(reverse("console:task-edit", args=[task.id]), task_post(name="Renamed", series=[other_series.id]))

    task.refresh_from_db()
    assert task.name == "Renamed"
    assert set(task.cases.values_list("series_id", flat=True)) == {small_ct_series.id, other_series.id}
    assert task.cases.get(series=other_series).label == "Case 2"


@pytest.mark.django_db
def test_closing_a_task_from_the_dashboard(admin_client, small_ct_series):
    admin_client.post(reverse("console:task-create"), task_post(series=[small_ct_series.id]))
    task = Task.objects.get()

    admin_client.post(reverse("console:task-open", args=[task.id]), {"is_open": "0"})

    task.refresh_from_db()
    assert task.is_open is False


@pytest.mark.django_db
def test_the_markdown_preview_is_sanitised(admin_client):
    response = admin_client.post(
        reverse("console:api-markdown"),
        {"markdown": "**Bold** <script>alert(1)</script> [x](javascript:alert(1))"},
        content_type="application/json",
    )

    html = response.json()["html"]
    assert "<strong>Bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html


@pytest.mark.django_db
def test_a_gold_answer_typed_without_a_slice_keeps_no_slice_so_any_slice_may_match(admin_client, small_ct_series):
    admin_client.post(
        reverse("console:task-create"),
        task_post(
            series=[small_ct_series.id],
            gold_series=[small_ct_series.id],
            **{"ref-TOTAL_FORMS": "1", "ref-0-series": str(small_ct_series.id), "ref-0-long_axis_mm": "16.0"},
        ),
    )

    reference = ReferenceLesion.objects.get(series=small_ct_series, source="admin")
    assert reference.sop_instance_uid == ""
    assert len(reference.center_patient_mm) == 3
