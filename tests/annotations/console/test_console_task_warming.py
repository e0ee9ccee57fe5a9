"""Opening a task warms the image cache of its series, so the first reader does not pay the decode."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Task
from tests.annotations.console.test_console_tasks import task_post
from tests.factories import CaseFactory, TaskFactory, admin_user
from viewer.dicomweb.delivery import LOSSLESS_CACHE, frame_key
from viewer.services import image_cache


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


@pytest.fixture
def cold_cache():
    image_cache.clear_process_cache()


def cached_frames(series) -> int:
    return sum(image_cache.contains(LOSSLESS_CACHE, frame_key(instance, 1)) for instance in series.instances.all())


@pytest.mark.django_db(transaction=True)
def test_creating_an_open_task_warms_every_frame_of_its_series_after_the_commit(
    admin_client, small_ct_series, cold_cache
):
    assert cached_frames(small_ct_series) == 0

    admin_client.post(reverse("console:task-create"), task_post(series=[small_ct_series.id]))

    assert Task.objects.get().is_open
    assert cached_frames(small_ct_series) == small_ct_series.instances.count() == 9


@pytest.mark.django_db(transaction=True)
def test_creating_a_closed_task_leaves_the_cache_cold(admin_client, small_ct_series, cold_cache):
    admin_client.post(reverse("console:task-create"), {**task_post(series=[small_ct_series.id]), "is_open": ""})

    assert Task.objects.get().is_open is False
    assert cached_frames(small_ct_series) == 0


@pytest.mark.django_db
def test_reopening_a_task_queues_the_warming_on_commit_and_closing_does_not(
    admin_client, small_ct_series, cold_cache, django_capture_on_commit_callbacks
):
    task = TaskFactory(is_open=False)
    CaseFactory(task=task, series=small_ct_series)

    with django_capture_on_commit_callbacks(execute=False) as closing:
        admin_client.post(reverse("console:task-open", args=[task.id]), {"is_open": "0"})
    with django_capture_on_commit_callbacks(execute=True) as opening:
        admin_client.post(reverse("console:task-open", args=[task.id]), {"is_open": "1"})

    assert closing == []
    assert len(opening) == 1
    assert cached_frames(small_ct_series) == 9
