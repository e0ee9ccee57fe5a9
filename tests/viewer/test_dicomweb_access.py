"""Who sees which images over DICOMweb: admins and researchers everything, readers open-task series only."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from tests.conftest import small_patient
from tests.factories import CaseFactory, ReaderFactory, TaskFactory, UserFactory, admin_user, researcher_user
from viewer.dicomweb import access
from viewer.models import Series
from viewer.services.dicom_import import import_paths
from viewer.services.synthetic_ct import write_series

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_series(small_ct_series, tmp_path) -> Series:
    written = write_series(small_patient("RB-TEST-002", seed=2), tmp_path / "other")
    import_paths(written.files)
    return Series.objects.get(series_instance_uid=written.series_instance_uid)


def frame_url(series: Series) -> str:
    instance = series.instances.first()
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/1"
    )


def listed_series(client) -> set[str]:
    return {item["0020000E"]["Value"][0] for item in client.get("/dicomweb/series").json()}


@pytest.mark.parametrize("make_user", [admin_user, researcher_user])
def test_admins_and_researchers_see_every_series(client, small_ct_series, other_series, make_user):
    client.force_login(make_user())
    assert listed_series(client) == {small_ct_series.series_instance_uid, other_series.series_instance_uid}
    assert client.get(frame_url(other_series)).status_code == 200


def test_reader_sees_only_series_of_open_tasks(client, small_ct_series, other_series):
    CaseFactory(series=small_ct_series, task=TaskFactory(is_open=True))
    CaseFactory(series=other_series, task=TaskFactory(is_open=False))
    client.force_login(ReaderFactory().user)
    assert listed_series(client) == {small_ct_series.series_instance_uid}
    assert client.get(frame_url(small_ct_series)).status_code == 200
    hidden = client.get(frame_url(other_series))
    assert hidden.status_code == 404
    assert hidden["Content-Type"] == "application/json"


def test_reader_sees_every_time_point_of_an_open_follow_up_case_and_none_of_a_closed_one(
    client, small_ct_series, other_series
):
    from annotations.models import CaseTimePoint, Task

    case = CaseFactory(series=small_ct_series, task=TaskFactory(is_open=True, kind=Task.Kind.FOLLOW_UP))
    CaseTimePoint.objects.create(case=case, index=0, series=small_ct_series)
    CaseTimePoint.objects.create(case=case, index=1, series=other_series)
    client.force_login(ReaderFactory().user)
    assert listed_series(client) == {small_ct_series.series_instance_uid, other_series.series_instance_uid}
    assert client.get(frame_url(other_series)).status_code == 200

    Task.objects.filter(pk=case.task_id).update(is_open=False)
    assert listed_series(client) == set()


def test_reader_cannot_read_metadata_or_studies_of_hidden_series(client, small_ct_series, other_series):
    CaseFactory(series=small_ct_series, task=TaskFactory(is_open=True))
    client.force_login(ReaderFactory().user)
    study_uids = {item["0020000D"]["Value"][0] for item in client.get("/dicomweb/studies").json()}
    assert study_uids == {small_ct_series.study.study_instance_uid}
    url = (
        f"/dicomweb/studies/{other_series.study.study_instance_uid}/series/{other_series.series_instance_uid}/metadata"
    )
    assert client.get(url).status_code == 404


def test_closing_a_task_hides_its_series_from_readers(client, small_ct_series, settings):
    # Decisions are memoised for IMAGE_ACCESS_CACHE_SECONDS; with 0 the change shows at once.
    settings.READERBOARD = {**settings.READERBOARD, "IMAGE_ACCESS_CACHE_SECONDS": 0}
    task = TaskFactory(is_open=True)
    CaseFactory(series=small_ct_series, task=task)
    client.force_login(ReaderFactory().user)
    assert client.get(frame_url(small_ct_series)).status_code == 200
    task.is_open = False
    task.save()
    assert client.get(frame_url(small_ct_series)).status_code == 404


def test_signed_in_user_without_a_role_sees_nothing(client, small_ct_series):
    CaseFactory(series=small_ct_series, task=TaskFactory(is_open=True))
    client.force_login(UserFactory())
    assert client.get("/dicomweb/studies").json() == []
    assert client.get(frame_url(small_ct_series)).status_code == 404


def test_anonymous_thumbnail_request_is_refused(client, small_ct_series):
    response = client.get(f"/api/images/series/{small_ct_series.pk}/thumbnail")
    assert response.status_code == 401


def test_access_decisions_are_memoised_for_the_configured_seconds(client, small_ct_series, settings):
    settings.READERBOARD = {**settings.READERBOARD, "IMAGE_ACCESS_CACHE_SECONDS": 600}
    task = TaskFactory(is_open=True)
    CaseFactory(series=small_ct_series, task=task)
    client.force_login(ReaderFactory().user)
    assert client.get(frame_url(small_ct_series)).status_code == 200
    task.is_open = False
    task.save()
    assert client.get(frame_url(small_ct_series)).status_code == 200  # within the memo lifetime
    access.forget_everything()
    assert client.get(frame_url(small_ct_series)).status_code == 404


def test_repeated_series_metadata_needs_no_query_until_the_memo_expires(
    client, small_ct_series, settings, django_assert_num_queries
):
    settings.READERBOARD = {**settings.READERBOARD, "IMAGE_ACCESS_CACHE_SECONDS": 600}
    client.force_login(admin_user())
    url = f"/dicomweb/studies/{small_ct_series.study.study_instance_uid}/series/{small_ct_series.series_instance_uid}"
    access.forget_everything()
    first = client.get(f"{url}/metadata", HTTP_ACCEPT="application/dicom+json")
    assert first.status_code == 200
    with django_assert_num_queries(0):
        again = client.get(f"{url}/metadata", HTTP_ACCEPT="application/dicom+json")
    assert again.content == first.content
    assert again["ETag"] == first["ETag"]


def test_instances_added_to_a_series_show_once_its_version_memo_expires(client, small_ct_series, settings, tmp_path):
    settings.READERBOARD = {**settings.READERBOARD, "IMAGE_ACCESS_CACHE_SECONDS": 600}
    client.force_login(admin_user())
    url = (
        f"/dicomweb/studies/{small_ct_series.study.study_instance_uid}/series/"
        f"{small_ct_series.series_instance_uid}/metadata"
    )
    before = client.get(url, HTTP_ACCEPT="application/dicom+json")
    extra = small_ct_series.instances.first()
    extra.pk, extra.sop_instance_uid, extra.sort_position_mm = None, generate_uid(), 999.0
    extra.save()
    assert client.get(url, HTTP_ACCEPT="application/dicom+json")["ETag"] == before["ETag"]  # memoised
    settings.READERBOARD = {**settings.READERBOARD, "IMAGE_ACCESS_CACHE_SECONDS": 0}
    after = client.get(url, HTTP_ACCEPT="application/dicom+json")
    assert after["ETag"] != before["ETag"]
    assert len(after.json()) == len(before.json()) + 1
