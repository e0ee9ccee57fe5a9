"""Object storage: with STORAGES on an S3-compatible bucket, DICOM import and exports live in the bucket.

A moto S3 server runs in-process on a free loopback port and the dicom and exports
stores point at it, built the way settings.py builds them when READERBOARD_S3_BUCKET
is set. The local filesystem default is covered by the viewer and export tests.
"""

from __future__ import annotations

import csv
import io
import uuid

import boto3
import numpy as np
import pydicom
import pytest
import requests
from django.core.files.storage import storages
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient

from annotations.exports.tasks import run_export_job
from annotations.models import ExportJob
from tests.annotations.export_data import build_scene
from tests.factories import admin_user, researcher_user
from viewer.dicomweb.multipart import parse_multipart
from viewer.models import Instance, Series
from viewer.services.dicom_import import import_paths

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "readerboard-test", "aws_secret_access_key": "readerboard-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings):
    """A fresh bucket per test, with the dicom and exports stores on it (as settings.py builds them)."""
    name = f"rb-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, **CREDENTIALS)
    client.create_bucket(Bucket=name)
    options = {
        "bucket_name": name,
        "endpoint_url": s3_endpoint,
        "region_name": REGION,
        "access_key": CREDENTIALS["aws_access_key_id"],
        "secret_key": CREDENTIALS["aws_secret_access_key"],
        "addressing_style": "path",
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": 300,
        "file_overwrite": False,
        "location": "",
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "dicom": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
        "exports": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    storages._storages.clear()
    yield client, name
    storages._storages.clear()


def object_keys(client, name: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=name).get("Contents", [])]


def object_bytes(client, name: str, key: str) -> bytes:
    return client.get_object(Bucket=name, Key=key)["Body"].read()


def files_under(folder) -> list:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.fixture
def remote_series(bucket, small_ct_files):
    import_paths(small_ct_files.files, collection_name="Test CT")
    return Series.objects.get(series_instance_uid=small_ct_files.series_instance_uid)


@pytest.fixture
def admin_client(client):
    client.force_login(admin_user())
    return client


def test_import_puts_every_instance_in_the_bucket_and_nothing_under_the_data_dir(
    bucket, remote_series, isolated_data_dir
):
    client, name = bucket
    instances = list(Instance.objects.filter(series=remote_series))

    assert len(instances) == 9
    assert sorted(object_keys(client, name)) == sorted(instance.file_path for instance in instances)
    for instance in instances:
        assert instance.file_path.startswith(f"dicom/{remote_series.study.study_instance_uid}/")
        stored = pydicom.dcmread(io.BytesIO(object_bytes(client, name, instance.file_path)))
        assert stored.SOPInstanceUID == instance.sop_instance_uid
        assert len(object_bytes(client, name, instance.file_path)) == instance.file_size
    assert files_under(isolated_data_dir / "dicom") == []
    assert [p for p in files_under(isolated_data_dir / "tmp") if p.suffix == ".partial"] == []


def test_reimporting_the_series_adds_no_objects(bucket, remote_series, small_ct_files):
    client, name = bucket
    before = sorted(object_keys(client, name))

    report = import_paths(small_ct_files.files, collection_name="Test CT")

    assert report.duplicates == 9
    assert sorted(object_keys(client, name)) == before


def test_wado_rs_frame_from_the_bucket_matches_the_stored_pixels(bucket, remote_series, admin_client):
    client, name = bucket
    instance = remote_series.instances.order_by("sort_position_mm").first()
    study_uid, series_uid = remote_series.study.study_instance_uid, remote_series.series_instance_uid
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}/frames/1"

    response = admin_client.get(url, HTTP_ACCEPT='multipart/related; type="application/octet-stream"')

    assert response.status_code == 200
    boundary = response["Content-Type"].split("boundary=")[1].split(";")[0].strip('"')
    ((headers, payload),) = parse_multipart(response.content, boundary=boundary)
    expected = pydicom.dcmread(io.BytesIO(object_bytes(client, name, instance.file_path))).pixel_array
    assert np.array_equal(np.frombuffer(payload, dtype="<i2").reshape(64, 64), expected)


def test_a_machine_with_a_cold_cache_fetches_the_object_once_into_the_object_cache(
    bucket, remote_series, isolated_data_dir
):
    from viewer.services.stored_files import local_path

    client, name = bucket
    instance = remote_series.instances.first()
    cached = isolated_data_dir / "cache" / "objects" / f"{instance.sop_instance_uid}.dcm"
    cached.unlink(missing_ok=True)  # as on a worker that did not import the file

    path = local_path(instance)

    assert path == cached
    assert path.read_bytes() == object_bytes(client, name, instance.file_path)
    assert [p.name for p in cached.parent.iterdir() if p.name.endswith(".part")] == []


def test_series_metadata_from_the_bucket_matches_the_stored_headers(bucket, remote_series, admin_client):
    client, name = bucket
    study_uid, series_uid = remote_series.study.study_instance_uid, remote_series.series_instance_uid

    response = admin_client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata")

    assert response.status_code == 200
    documents = response.json()
    assert len(documents) == 9
    by_uid = {instance.sop_instance_uid: instance for instance in remote_series.instances.all()}
    for document in documents:
        instance = by_uid[document["00080018"]["Value"][0]]
        stored = pydicom.dcmread(io.BytesIO(object_bytes(client, name, instance.file_path)), stop_before_pixels=True)
        assert document["00200013"]["Value"] == [stored.InstanceNumber]
        assert document["00280030"]["Value"] == [float(v) for v in stored.PixelSpacing]
        assert document["00200032"]["Value"] == [float(v) for v in stored.ImagePositionPatient]


def test_a_csv_export_is_kept_in_the_bucket_and_downloads_through_the_api(bucket, remote_series, isolated_data_dir):
    client, name = bucket
    scene = build_scene(remote_series)
    researcher = researcher_user()
    job = ExportJob.objects.create(task=scene.task, format="csv", requested_by=researcher)

    run_export_job.delay(job.pk)

    job.refresh_from_db()
    assert job.status == "done"
    assert job.file_path.startswith(f"exports/job-{job.pk}/") and job.file_path.endswith(".csv")
    assert job.file_path in object_keys(client, name)
    assert files_under(isolated_data_dir / "exports") == []
    stored = object_bytes(client, name, job.file_path)
    rows = list(csv.DictReader(io.StringIO(stored.decode())))
    assert len({row["read_id"] for row in rows}) == 4

    api = APIClient()
    api.force_authenticate(researcher)
    listed = api.get(f"/api/exports/{job.pk}/").data
    assert listed["file_size"] == len(stored)
    download = api.get(f"/api/exports/{job.pk}/download/")
    assert download.status_code == 302
    fetched = requests.get(download["Location"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == stored
    assert fetched.headers["Content-Type"] == "text/csv"
    assert "attachment" in fetched.headers["Content-Disposition"]


def test_rerunning_a_finished_remote_export_keeps_its_object(bucket, remote_series):
    client, name = bucket
    scene = build_scene(remote_series)
    job = ExportJob.objects.create(task=scene.task, format="csv", requested_by=researcher_user())
    run_export_job.delay(job.pk)
    job.refresh_from_db()
    first = (job.file_path, job.finished_at)

    run_export_job.delay(job.pk)

    job.refresh_from_db()
    assert (job.file_path, job.finished_at) == first
    assert [key for key in object_keys(client, name) if key.startswith("exports/")] == [job.file_path]
