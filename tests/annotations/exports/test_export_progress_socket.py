"""The export progress socket (/ws/console/exports/<job>/): live progress for the job's owner and admins only."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from annotations.console.consumers import FORBIDDEN, NOT_FOUND, ExportProgressConsumer
from annotations.exports.tasks import run_export_job
from annotations.models import ExportJob
from tests.annotations.export_data import build_scene
from tests.factories import ReaderFactory, admin_user, researcher_user

pytestmark = pytest.mark.django_db(transaction=True)


def communicator_for(user, job_id: int) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ExportProgressConsumer.as_asgi(), f"/ws/console/exports/{job_id}/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"job_id": job_id}}
    return communicator


def test_the_owner_sees_the_job_now_and_every_update_until_it_is_done(small_ct_series):
    scene = build_scene(small_ct_series)
    owner = researcher_user()
    job = ExportJob.objects.create(task=scene.task, format="bundle", requested_by=owner)

    async def scenario() -> list[dict]:
        communicator = communicator_for(owner, job.pk)
        connected, _ = await communicator.connect()
        assert connected
        messages = [await communicator.receive_json_from()]
        await database_sync_to_async(run_export_job)(job.pk)
        while messages[-1]["status"] not in ("done", "failed"):
            messages.append(await communicator.receive_json_from(timeout=10))
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()

    assert messages[0]["status"] == "pending" and messages[0]["job_id"] == job.pk
    assert messages[-1]["status"] == "done"
    assert messages[-1]["progress_done"] == messages[-1]["progress_total"] > 0
    assert messages[-1]["download_url"] == f"/api/exports/{job.pk}/download/"
    assert any(message["status"] == "running" for message in messages)


@pytest.mark.parametrize(
    ("who", "code"),
    [("another researcher", NOT_FOUND), ("a reader", FORBIDDEN), ("nobody", FORBIDDEN), ("an admin", None)],
)
def test_only_the_owner_and_admins_may_follow_an_export(small_ct_series, who, code):
    from django.contrib.auth.models import AnonymousUser

    scene = build_scene(small_ct_series)
    job = ExportJob.objects.create(task=scene.task, format="csv", requested_by=researcher_user())
    user = {
        "another researcher": lambda: researcher_user(),
        "a reader": lambda: ReaderFactory().user,
        "nobody": AnonymousUser,
        "an admin": lambda: admin_user(),
    }[who]()

    async def scenario():
        communicator = communicator_for(user, job.pk)
        connected, close_code = await communicator.connect()
        await communicator.disconnect()
        return connected, close_code

    connected, close_code = async_to_sync(scenario)()

    assert connected is (code is None)
    if code is not None:
        assert close_code == code
