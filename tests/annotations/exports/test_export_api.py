"""The export API: who may export, job lifecycle, progress broadcast and download."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.booth.teams import team_for_name
from annotations.exports.tasks import export_group, run_export_job
from annotations.models import ExportJob
from tests.annotations.export_data import build_scene
from tests.factories import ReaderFactory, admin_user, researcher_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(small_ct_series):
    return build_scene(small_ct_series)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def start(client, task, *, fmt="csv", pseudonymise=True, capture=None):
    with capture(execute=True):
        return client.post(
            "/api/exports/", {"task": task.pk, "format": fmt, "pseudonymise": pseudonymise}, format="json"
        )


def test_readers_and_strangers_cannot_export(scene):
    reader_client = client_for(ReaderFactory().user)

    assert reader_client.get("/api/exports/").status_code == 403
    assert reader_client.post("/api/exports/", {"task": scene.task.pk, "format": "csv"}).status_code == 403
    assert APIClient().get("/api/exports/").status_code in (401, 403)
    assert not ExportJob.objects.exists()


def test_a_researcher_exports_polls_and_downloads_a_pseudonymised_csv(scene, django_capture_on_commit_callbacks):
    client = client_for(researcher_user())

    created = start(client, scene.task, capture=django_capture_on_commit_callbacks)

    assert created.status_code == 202
    job = client.get(f"/api/exports/{created.data['id']}/").data
    assert job["status"] == "done" and job["progress_fraction"] == 1.0
    assert job["progress_done"] == job["progress_total"] == 4  # four reads
    download = client.get(f"/api/exports/{job['id']}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"
    assert "attachment" in download["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert {row["reader"] for row in rows} == {reader.pseudonym for reader in scene.readers}


def test_a_researcher_cannot_ask_for_reader_identities(scene, django_capture_on_commit_callbacks):
    response = start(
        client_for(researcher_user()), scene.task, pseudonymise=False, capture=django_capture_on_commit_callbacks
    )

    assert response.status_code == 403
    assert not ExportJob.objects.exists()


def test_an_admin_may_export_identified_readers(scene, django_capture_on_commit_callbacks):
    client = client_for(admin_user())

    created = start(client, scene.task, pseudonymise=False, capture=django_capture_on_commit_callbacks)

    body = b"".join(client.get(f"/api/exports/{created.data['id']}/download/").streaming_content).decode()
    assert all(reader.display_name in body for reader in scene.readers)


def test_only_admins_may_ask_for_team_names(scene, django_capture_on_commit_callbacks):
    reader = scene.readers[0]
    reader.team = team_for_name("County Hospital")
    reader.save()
    body = {"task": scene.task.pk, "format": "csv", "identify_teams": True}

    refused = client_for(researcher_user()).post("/api/exports/", body, format="json")
    admin = client_for(admin_user())
    with django_capture_on_commit_callbacks(execute=True):
        created = admin.post("/api/exports/", body, format="json")

    assert refused.status_code == 403
    assert created.status_code == 202 and created.data["identify_teams"] is True
    download = b"".join(admin.get(f"/api/exports/{created.data['id']}/download/").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(download)))
    assert {row["reader"]: row["reader_team"] for row in rows}[reader.pseudonym] == "County Hospital"


def test_researchers_see_only_their_own_jobs(scene, django_capture_on_commit_callbacks):
    admin_job = start(
        client_for(admin_user()), scene.task, pseudonymise=False, capture=django_capture_on_commit_callbacks
    )
    researcher = client_for(researcher_user())

    assert researcher.get("/api/exports/").data == []
    assert researcher.get(f"/api/exports/{admin_job.data['id']}/").status_code == 404
    assert researcher.get(f"/api/exports/{admin_job.data['id']}/download/").status_code == 404


def test_token_authentication_works_for_scripts(scene, django_capture_on_commit_callbacks):
    user = researcher_user()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    created = start(client, scene.task, fmt="bundle", capture=django_capture_on_commit_callbacks)

    assert created.status_code == 202
    listed = client.get(f"/api/exports/?task={scene.task.pk}").data
    assert [job["id"] for job in listed] == [created.data["id"]] and listed[0]["status"] == "done"
    download = client.get(listed[0]["download_url"])
    assert download["Content-Type"] == "application/zip"


def test_an_unfinished_job_has_no_download(scene):
    user = researcher_user()
    job = ExportJob.objects.create(task=scene.task, format="sr", requested_by=user)

    response = client_for(user).get(f"/api/exports/{job.pk}/download/")

    assert response.status_code == 409 and response.data["status"] == "pending"


def test_invalid_format_is_a_400(scene):
    response = client_for(researcher_user()).post("/api/exports/", {"task": scene.task.pk, "format": "pdf"})

    assert response.status_code == 400 and "format" in response.data


def test_the_celery_task_broadcasts_progress_to_the_job_group(scene):
    job = ExportJob.objects.create(task=scene.task, format="bundle", requested_by=researcher_user())
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(export_group(job.pk), channel)

    run_export_job.delay(job.pk)

    messages = []
    while True:
        try:
            messages.append(async_to_sync(layer.receive)(channel))
        except Exception:  # noqa: BLE001 - empty in-memory channel times out
            break
        if messages[-1]["status"] == "done":
            break
    assert messages[0]["type"] == "export.progress" and messages[0]["status"] == "running"
    assert messages[-1]["status"] == "done" and messages[-1]["download_url"] == f"/api/exports/{job.pk}/download/"
    job.refresh_from_db()
    assert job.status == "done" and job.file_path.startswith(f"exports/job-{job.pk}/")


def test_rerunning_a_finished_job_keeps_its_file(scene):
    job = ExportJob.objects.create(task=scene.task, format="csv", requested_by=researcher_user())
    run_export_job.delay(job.pk)
    job.refresh_from_db()
    first = (job.file_path, job.finished_at)

    run_export_job.delay(job.pk)

    job.refresh_from_db()
    assert (job.file_path, job.finished_at) == first
