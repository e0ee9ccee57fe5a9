"""Results pages for researchers: agreement figures, plots, the pseudonymised reader table and case views."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.console.results import PLOTS, agreement_summary, reader_table
from annotations.models import CaseConsensus, ConsensusLesion, Mark, ReaderQuality
from tests.factories import CaseFactory, ReaderFactory, ReadFactory, TaskFactory, researcher_user


@pytest.fixture
def task_with_consensus(small_ct_series):
    """Three readers measured one lesion as 14, 16 and 18 mm; the consensus median is 16 mm."""
    task = TaskFactory(reads_per_case=3)
    case = CaseFactory(task=task, series=small_ct_series)
    instance = small_ct_series.instances.order_by("sort_position_mm")[4]
    readers, members = [], []
    for length in (14.0, 16.0, 18.0):
        reader = ReaderFactory()
        read = ReadFactory(case=case, reader=reader, duration_s=30.0)
        Mark.objects.create(
            read=read,
            lesion_index=1,
            kind="long_axis",
            instance=instance,
            frame=1,
            start_col=20,
            start_row=30,
            end_col=20 + length,
            end_row=30,
            length_mm=length,
        )
        readers.append(reader)
        members.append({"read_id": read.id, "reader_id": reader.id, "lesion_index": 1})
    consensus = CaseConsensus.objects.create(case=case, algorithm_version="1", inputs_hash="x", n_reads=3)
    ConsensusLesion.objects.create(
        consensus=consensus, lesion_index=1, support=3, support_fraction=1.0, members=members,
        long_axis={"sop_instance_uid": instance.sop_instance_uid, "frame": 1, "start": [20, 30], "end": [36, 30],
                   "length_mm": 16.0},
        long_axis_median_mm=16.0, long_axis_iqr_mm=2.0, long_axis_cv=0.125,
    )  # fmt: skip
    ReaderQuality.objects.create(
        task=task, reader=readers[0], n_reads=1, gold_mean_abs_error_mm=1.5, sensitivity=0.9, specificity=0.99
    )
    return task, case, readers


@pytest.mark.django_db
def test_agreement_figures_come_from_the_consensus_and_the_readers_lines(task_with_consensus):
    task, _, _ = task_with_consensus

    summary = agreement_summary(task=task)

    assert summary["cases_with_consensus"] == 1
    assert summary["median_cv_percent"] == 12.5
    assert summary["bias_mm"] == 0.0
    # Differences -2, 0, 2 mm: SD 2 mm, limits ±3.92 mm.
    assert summary["limits_of_agreement_mm"] == [-3.92, 3.92]


@pytest.mark.django_db
def test_the_reader_table_shows_pseudonyms_times_and_quality(task_with_consensus):
    task, _, readers = task_with_consensus

    rows = {row["pseudonym"]: row for row in reader_table(task=task)}

    assert set(rows) == {reader.pseudonym for reader in readers}
    first = rows[readers[0].pseudonym]
    assert (first["reads"], first["mean_time_s"], first["gold_mean_abs_error_mm"]) == (1, 30.0, 1.5)


@pytest.mark.django_db
def test_every_plot_renders_as_svg_even_before_any_consensus(client, task_with_consensus):
    task, _, _ = task_with_consensus
    empty_task = TaskFactory()
    client.force_login(researcher_user())

    for current in (task, empty_task):
        for name in PLOTS:
            response = client.get(reverse("console:task-plot", args=[current.id, name]))
            assert response.status_code == 200
            assert response["Content-Type"] == "image/svg+xml"
            assert response.content.lstrip().startswith(b"<?xml")
    assert client.get(f"/console/tasks/{task.id}/results/plots/nope.svg").status_code == 404


@pytest.mark.django_db
def test_the_results_page_names_readers_only_by_pseudonym(client, task_with_consensus):
    task, _, readers = task_with_consensus
    client.force_login(researcher_user())

    page = client.get(reverse("console:task-results", args=[task.id])).content.decode()

    for reader in readers:
        assert reader.pseudonym in page
        assert reader.display_name not in page
    assert "/api/exports/" in page or 'id="exports"' in page


@pytest.mark.django_db
def test_the_case_view_draws_each_read_and_the_consensus_over_the_slice(client, task_with_consensus):
    task, case, readers = task_with_consensus
    client.force_login(researcher_user())

    page = client.get(reverse("console:case", args=[task.id, case.id])).content.decode()

    assert page.count('class="reader long_axis"') == 3
    assert page.count('class="consensus long_axis"') == 1
    assert "/rendered?viewport=512,512" in page
    assert 'viewBox="-0.5 -0.5 64 64"' in page
    for reader in readers:
        assert reader.pseudonym in page and reader.display_name not in page
