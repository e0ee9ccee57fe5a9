"""Chunked, resumable uploads through the console API end in an import with a per-file report."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from annotations.console import uploads
from annotations.console.tasks import import_upload, start_import
from tests.factories import admin_user
from viewer.models import ImportJob, Instance


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def upload(client, job_id: int, name: str, content: bytes, chunk: int) -> dict:
    registered = client.post(
        reverse("console:api-upload-register", args=[job_id]),
        {"name": name, "size": len(content)},
        content_type="application/json",
    ).json()
    url = reverse("console:api-upload-chunk", args=[job_id, registered["upload_id"]])
    offset = 0
    while offset < len(content):
        answer = client.put(
            f"{url}?offset={offset}", content[offset : offset + chunk], content_type="application/octet-stream"
        )
        assert answer.status_code == 200, answer.json()
        offset = answer.json()["offset"]
    return registered


@pytest.mark.django_db
def test_a_chunked_zip_upload_imports_its_files_and_reports_the_rejected_one(admin_api, small_ct_files):
    dicom = {f"study/IM{i:04d}.dcm": path.read_bytes() for i, path in enumerate(small_ct_files.files[:3])}
    archive = zip_of({**dicom, "study/notes.txt": b"not an image at all"})
    job = admin_api.post(
        reverse("console:api-import-create"), {"collection": "Booth uploads"}, content_type="application/json"
    ).json()

    upload(admin_api, job["id"], "batch/scan.zip", archive, chunk=4096)
    started = admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    assert started.status_code == 202
    done = admin_api.get(reverse("console:api-import", args=[job["id"]])).json()
    assert done["status"] == "done"
    assert done["files_done"] == done["files_total"] == 4
    assert done["percent"] == 100
    assert done["summary"]["imported"] == 3 and done["summary"]["rejected"] == 1
    by_name = {row["name"]: row for row in done["report"]}
    assert by_name["batch/scan.zip:study/notes.txt"]["status"] == "rejected"
    assert by_name["batch/scan.zip:study/notes.txt"]["reason"].startswith("not DICOM")
    assert {by_name[f"batch/scan.zip:{name}"]["status"] for name in dicom} == {"imported"}
    assert Instance.objects.filter(series__study__collection__name="Booth uploads").count() == 3


@pytest.mark.django_db
def test_reuploading_the_same_files_reports_duplicates_by_their_dropped_names(admin_api, small_ct_files):
    content = small_ct_files.files[0].read_bytes()
    for expected in ("imported", "duplicate"):
        job = admin_api.post(
            reverse("console:api-import-create"), {"collection": "Again"}, content_type="application/json"
        ).json()
        upload(admin_api, job["id"], "folder/one.dcm", content, chunk=len(content))
        admin_api.post(reverse("console:api-import-start", args=[job["id"]]))
        report = ImportJob.objects.get(pk=job["id"]).report
        assert report == [
            {
                "name": "folder/one.dcm",
                "status": expected,
                "reason": report[0]["reason"],
                "sop_instance_uid": report[0]["sop_instance_uid"],
                "phi": report[0]["phi"],
            }
        ]


@pytest.mark.django_db
def test_a_chunk_at_the_wrong_offset_is_refused_with_the_offset_to_resume_from(admin_api):
    job = admin_api.post(
        reverse("console:api-import-create"), {"collection": "X"}, content_type="application/json"
    ).json()
    registered = admin_api.post(
        reverse("console:api-upload-register", args=[job["id"]]),
        {"name": "big.dcm", "size": 10},
        content_type="application/json",
    ).json()
    url = reverse("console:api-upload-chunk", args=[job["id"], registered["upload_id"]])
    assert admin_api.put(f"{url}?offset=0", b"12345", content_type="application/octet-stream").json()["offset"] == 5

    gap = admin_api.put(f"{url}?offset=7", b"890", content_type="application/octet-stream")

    assert gap.status_code == 409
    assert gap.json()["offset"] == 5
    assert admin_api.get(url).json() == {
        "upload_id": registered["upload_id"],
        "name": "big.dcm",
        "size": 10,
        "offset": 5,
        "complete": False,
    }


@pytest.mark.django_db
def test_a_retried_chunk_whose_answer_was_lost_is_not_written_twice(admin_api):
    job = uploads.create_import_job(user=admin_user(), collection_name="X")
    state = uploads.register_upload(job=job, name="a.dcm", size=6)
    uploads.append_chunk(job=job, upload_id=state.upload_id, offset=0, chunk=b"abc")

    again = uploads.append_chunk(job=job, upload_id=state.upload_id, offset=0, chunk=b"abc")

    assert again.offset == 3
    final = uploads.append_chunk(job=job, upload_id=state.upload_id, offset=3, chunk=b"def")
    assert final.complete


@pytest.mark.django_db
def test_an_import_cannot_start_while_a_file_is_incomplete(admin_api):
    job = admin_api.post(
        reverse("console:api-import-create"), {"collection": "X"}, content_type="application/json"
    ).json()
    admin_api.post(
        reverse("console:api-upload-register", args=[job["id"]]),
        {"name": "a.dcm", "size": 10},
        content_type="application/json",
    )

    answer = admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    assert answer.status_code == 409
    assert "not fully uploaded" in answer.json()["detail"]
    assert ImportJob.objects.get(pk=job["id"]).status == "pending"


@pytest.mark.django_db
def test_a_chunk_past_the_declared_size_and_a_file_over_the_limit_are_refused(admin_api, settings):
    settings.READERBOARD = {**settings.READERBOARD, "UPLOAD_MAX_BYTES": 100}
    job = uploads.create_import_job(user=admin_user(), collection_name="X")
    with pytest.raises(uploads.UploadError, match="limit"):
        uploads.register_upload(job=job, name="huge.zip", size=101)
    state = uploads.register_upload(job=job, name="a.dcm", size=4)
    with pytest.raises(uploads.UploadError, match="past the declared size"):
        uploads.append_chunk(job=job, upload_id=state.upload_id, offset=0, chunk=b"12345")


@pytest.mark.django_db
def test_upload_ids_cannot_reach_outside_the_job_folder(admin_api):
    job = uploads.create_import_job(user=admin_user(), collection_name="X")
    for upload_id in ("../../secret_key", "a" * 32, "..%2F"):
        with pytest.raises(uploads.UploadError, match="unknown upload id"):
            uploads.upload_state(job=job, upload_id=upload_id)


@pytest.mark.django_db
def test_the_import_task_is_idempotent_once_finished(small_ct_files, django_capture_on_commit_callbacks):
    job = uploads.create_import_job(user=admin_user(), collection_name="Once")
    content = small_ct_files.files[0].read_bytes()
    state = uploads.register_upload(job=job, name="one.dcm", size=len(content))
    uploads.append_chunk(job=job, upload_id=state.upload_id, offset=0, chunk=content)
    with django_capture_on_commit_callbacks(execute=True):
        start_import(job=job)  # eager Celery runs the import on commit
    job.refresh_from_db()
    first_report = job.report

    import_upload.apply(args=[job.pk])

    job.refresh_from_db()
    assert job.report == first_report
    assert first_report[0]["status"] == "imported"


@pytest.mark.django_db
def test_an_upload_reports_identifying_attributes_and_can_store_deidentified_copies(admin_api, small_ct_files):
    from viewer.models import Study

    job = admin_api.post(
        reverse("console:api-import-create"),
        {"collection": "Public booth", "deidentify": True},
        content_type="application/json",
    ).json()
    upload(admin_api, job["id"], "IM0001.dcm", small_ct_files.files[0].read_bytes(), chunk=65536)
    admin_api.post(reverse("console:api-import-start", args=[job["id"]]))

    done = admin_api.get(reverse("console:api-import", args=[job["id"]])).json()
    assert done["deidentify"] is True
    assert done["summary"]["phi"]["PatientName"] == 1
    assert "PatientBirthDate" in done["report"][0]["phi"]
    study = Study.objects.get(collection__name="Public booth")
    assert "Test" not in study.patient_name
    assert study.study_instance_uid != small_ct_files.study_instance_uid
