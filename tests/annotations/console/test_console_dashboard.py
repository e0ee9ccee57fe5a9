"""The live task dashboard: its figures and the push to open dashboards when a read is saved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from annotations.console.consumers import TaskDashboardConsumer
from annotations.console.live import task_group
from annotations.console.selectors import task_dashboard
from annotations.models import CaseConsensus, Lease, Read
from tests.factories import CaseFactory, ReaderFactory, ReadFactory, TaskFactory, researcher_user


@pytest.fixture
def task_with_case(small_ct_series):
    task = TaskFactory(reads_per_case=2)
    return task, CaseFactory(task=task, series=small_ct_series)


@pytest.mark.django_db
def test_the_dashboard_counts_reads_complete_cases_active_readers_and_low_agreement(task_with_case):
    task, case = task_with_case
    first, second, leasing = ReaderFactory(), ReaderFactory(), ReaderFactory()
    ReadFactory(case=case, reader=first)
    ReadFactory(case=case, reader=second, version=1)
    ReadFactory(case=case, reader=second, version=2)  # a correction does not count twice
    old = ReadFactory(case=case, reader=ReaderFactory(), skip=True)
    Read.objects.filter(pk=old.pk).update(submitted_at=timezone.now() - timedelta(hours=3))
    Lease.objects.create(case=case, reader=leasing, expires_at=timezone.now() + timedelta(minutes=5))
    CaseConsensus.objects.create(case=case, algorithm_version="t", inputs_hash="h", n_reads=2, low_agreement=True)

    figures = task_dashboard(task=task)

    assert (figures["cases_total"], figures["cases_complete"]) == (1, 1)
    assert (figures["reads_total"], figures["reads_counted"], figures["reads_needed"]) == (4, 2, 2)
    assert figures["active_readers"] == 3  # two recent readers and one holding a lease; the 3-hour-old skip is not
    assert sum(bucket["reads"] for bucket in figures["reads_per_hour"]) == 4
    assert len(figures["reads_per_hour"]) == 24
    assert figures["consensus"] == {"current": 1, "stale": 0, "none": 0}
    assert [row["id"] for row in figures["low_agreement"]] == [case.id]


@pytest.mark.django_db
def test_a_read_newer_than_the_consensus_marks_it_stale(task_with_case):
    task, case = task_with_case
    CaseConsensus.objects.create(case=case, algorithm_version="t", inputs_hash="h")
    ReadFactory(case=case, reader=ReaderFactory())

    assert task_dashboard(task=task)["consensus"] == {"current": 0, "stale": 1, "none": 0}


@pytest.mark.django_db
def test_saving_a_read_tells_the_task_group_after_commit(task_with_case, django_capture_on_commit_callbacks):
    task, case = task_with_case
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(task_group(task.id), channel)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ReadFactory(case=case, reader=ReaderFactory())

    assert callbacks  # nothing is sent before the read has committed
    assert async_to_sync(layer.receive)(channel) == {"type": "task.changed", "task_id": task.id}


@pytest.mark.django_db(transaction=True)
def test_an_open_dashboard_socket_receives_new_figures_when_a_read_is_saved(small_ct_series):
    task = TaskFactory(reads_per_case=2)
    case = CaseFactory(task=task, series=small_ct_series)
    researcher = researcher_user()

    async def scenario():
        from channels.db import database_sync_to_async

        communicator = WebsocketCommunicator(TaskDashboardConsumer.as_asgi(), f"/ws/console/tasks/{task.id}/")
        communicator.scope["user"] = researcher
        communicator.scope["url_route"] = {"kwargs": {"task_id": task.id}}
        connected, _ = await communicator.connect()
        assert connected
        before = await communicator.receive_json_from()
        await database_sync_to_async(lambda: ReadFactory(case=case, reader=ReaderFactory()))()
        after = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return before["dashboard"], after["dashboard"]

    before, after = async_to_sync(scenario)()

    assert before["reads_counted"] == 0
    assert after["reads_counted"] == 1
    assert after["cases"][0]["reads"] == 1


@pytest.mark.django_db
def test_the_dashboard_json_matches_the_page_for_a_researcher(client, task_with_case):
    task, _ = task_with_case
    client.force_login(researcher_user())

    answer = client.get(f"/api/console/tasks/{task.id}/dashboard/").json()

    assert answer["task"]["id"] == task.id
    assert answer["cases_total"] == 1
