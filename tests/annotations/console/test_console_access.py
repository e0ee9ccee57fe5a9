"""Every console page and endpoint checks the role on the server: readers get 403, researchers only look."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, reverse

from annotations.console import urls as console_urls
from annotations.console.uploads import create_import_job, register_upload
from annotations.models import PredictionImportJob
from tests.factories import CaseFactory, ReaderFactory, TaskFactory, UserFactory, admin_user, researcher_user

PUBLIC = {"login", "logout", "invite"}
ADMIN_ONLY = {
    "upload",
    "import-detail",
    "task-create",
    "task-edit",
    "task-open",
    "people",
    "person-roles",
    "api-import-create",
    "api-import",
    "api-upload-register",
    "api-upload-chunk",
    "api-import-start",
    "api-markdown",
    "predictions-import",
    "predictions-shown",
}


@pytest.fixture
def console_objects(small_ct_series):
    task = TaskFactory()
    case = CaseFactory(task=task, series=small_ct_series)
    admin = admin_user()
    job = create_import_job(user=admin, collection_name="Uploads")
    upload = register_upload(job=job, name="a.dcm", size=10)
    return {
        "task_id": task.id,
        "case_id": case.id,
        "collection_id": small_ct_series.study.collection_id,
        "series_id": small_ct_series.id,
        "patient_id": small_ct_series.study.patient_id,
        "job_id": job.id,
        "prediction_import_id": PredictionImportJob.objects.create(task=task, model_name="m").id,
        "upload_id": upload.upload_id,
        "user_id": admin.id,
        "name": "bland-altman",
    }


def console_routes(objects: dict) -> list[tuple[str, str]]:
    routes = []
    for pattern in console_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        if pattern.name in PUBLIC:
            continue
        kwargs = {key: objects[key] for key in pattern.pattern.converters}
        routes.append((pattern.name, reverse(f"console:{pattern.name}", kwargs=kwargs)))
    return routes


def test_every_console_route_is_guarded_by_a_role_check():
    names = {pattern.name for pattern in console_urls.urlpatterns} - PUBLIC
    unguarded = [
        p.name for p in console_urls.urlpatterns if p.name in names and not hasattr(p.callback, "console_role")
    ]
    assert unguarded == []
    assert {
        p.name for p in console_urls.urlpatterns if getattr(p.callback, "console_role", "") == "admin"
    } == ADMIN_ONLY


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "put"])
def test_a_reader_gets_403_on_every_console_page_and_endpoint(client, console_objects, method):
    client.force_login(ReaderFactory().user)
    for name, url in console_routes(console_objects):
        response = getattr(client, method)(url)
        assert response.status_code == 403, (name, url, response.status_code)


@pytest.mark.django_db
def test_a_user_without_any_role_gets_403_too(client, console_objects):
    client.force_login(UserFactory())
    for name, url in console_routes(console_objects):
        assert client.get(url).status_code == 403, name


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_sign_in_and_api_calls_refused(client, console_objects):
    for name, url in console_routes(console_objects):
        response = client.get(url)
        if url.startswith("/api/"):
            assert response.status_code == 403, name
        else:
            assert response.status_code == 302, name
            assert response["Location"].startswith("/console/login/?next="), name


@pytest.mark.django_db
def test_a_researcher_sees_results_but_cannot_change_anything(client, console_objects):
    client.force_login(researcher_user())
    for name, url in console_routes(console_objects):
        status = client.get(url).status_code
        if name in ADMIN_ONLY:
            assert status == 403, (name, status)
            assert client.post(url).status_code == 403, name
        else:
            assert status == 200, (name, status)


@pytest.mark.django_db
def test_an_admin_can_open_every_console_page(client, console_objects):
    client.force_login(admin_user())
    for name, url in console_routes(console_objects):
        if name in {
            "task-open",
            "person-roles",
            "api-import-create",
            "api-upload-register",
            "api-import-start",
            "api-markdown",
            "predictions-import",
            "predictions-shown",
        }:
            continue  # POST-only; exercised by their own tests
        assert client.get(url).status_code == 200, name


# transaction=True: the consumer's database_sync_to_async closes "old" connections in its own thread,
# which on PostgreSQL would close the test's open transaction.
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_socket_refuses_readers_and_accepts_researchers(console_objects):
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from annotations.console.consumers import TaskDashboardConsumer

    task_id = console_objects["task_id"]

    async def connect(user):
        communicator = WebsocketCommunicator(TaskDashboardConsumer.as_asgi(), f"/ws/console/tasks/{task_id}/")
        communicator.scope["user"] = user
        communicator.scope["url_route"] = {"kwargs": {"task_id": task_id}}
        connected, code = await communicator.connect()
        first = await communicator.receive_json_from() if connected else None
        await communicator.disconnect()
        return connected, code, first

    reader = ReaderFactory().user
    connected, code, _ = async_to_sync(connect)(reader)
    assert (connected, code) == (False, 4403)
    connected, _, first = async_to_sync(connect)(researcher_user())
    assert connected
    assert first["dashboard"]["cases_total"] == 1
