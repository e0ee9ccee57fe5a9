"""Chunked, resumable browser uploads that end in one import through viewer's import service.

An admin's upload is an ImportJob in state "pending" with a folder under
DATA_DIR/uploads/job-<id>/. Each dropped file gets an upload id and is appended
chunk by chunk at an explicit byte offset, so a dropped connection resumes where
the server says it stopped. Starting the job hands the finished files to
viewer.services.dicom_import.import_paths (never a second importer) in a Celery
task that records progress and the per-file report on the ImportJob. This module
must never trust a client-sent path: files are stored under server-made names.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.core.field_checks import text_problem
from viewer.models import Collection, ImportJob
from viewer.nifti.importing import NiftiOptions
from viewer.services.dicom_import import FileOutcome, import_paths

CHUNK_BYTES = 5 * 1024 * 1024
MAX_CHUNK_BYTES = 16 * 1024 * 1024
MAX_FILES_PER_JOB = 20_000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_PROGRESS_EVERY_S = 0.25


class UploadError(ValueError):
    """A request the upload cannot honour; the message is shown to the admin."""


class OffsetMismatch(UploadError):
    """The chunk does not start where the stored file ends; `offset` says where to resume."""

    def __init__(self, offset: int):
        super().__init__(f"expected a chunk at byte {offset}")
        self.offset = offset


@dataclass(frozen=True)
class UploadedFile:
    upload_id: str
    name: str
    size: int
    offset: int

    @property
    def complete(self) -> bool:
        return self.offset >= self.size

    def as_json(self) -> dict:
        return {**asdict(self), "complete": self.complete}


def job_dir(job: ImportJob) -> Path:
    """Return the absolute folder of a job's uploaded files."""
    return settings.DATA_DIR / job.upload_dir


def clean_display_name(name: str) -> str:
    """Return the browser's relative path as a tidy POSIX name for the report (never used as a disk path)."""
    parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts if part not in ("", ".", "..", "/")]
    return "/".join(parts)[:400] or "unnamed"


@transaction.atomic
def create_import_job(
    *, user, collection_name: str, deidentify: bool = False, nifti: NiftiOptions | None = None
) -> ImportJob:
    """Open an upload: an ImportJob waiting for files, importing into the named collection.

    `nifti` says how NIfTI volumes among the files become DICOM (modality, patient); the defaults without it.
    """
    name = collection_name.strip()
    if not name:
        raise UploadError("collection name is required")
    if problem := text_problem(name):
        raise UploadError(f"collection name {problem}")
    if len(name) > 200:
        raise UploadError("collection name must be at most 200 characters")
    collection = Collection.objects.get_or_create(name=name)[0]
    job = ImportJob.objects.create(
        created_by=user,
        collection=collection,
        status=ImportJob.Status.PENDING,
        deidentify=deidentify,
        nifti_options=_stored_nifti_options(nifti),
    )
    job.upload_dir = f"uploads/job-{job.pk}"
    job.save(update_fields=["upload_dir"])
    (job_dir(job) / "files").mkdir(parents=True, exist_ok=True)
    return job


def _stored_nifti_options(nifti: NiftiOptions | None) -> dict:
    if nifti is None:
        return {}
    return {"modality": nifti.modality, "patient_id": nifti.patient_id, "patient_name": nifti.patient_name}


def nifti_options_of(job: ImportJob) -> NiftiOptions | None:
    """The NIfTI options the job was opened with, or None for the defaults."""
    stored = job.nifti_options or {}
    if not stored:
        return None
    return NiftiOptions(
        modality=stored["modality"], patient_id=stored.get("patient_id"), patient_name=stored.get("patient_name")
    )


def _require_pending(job: ImportJob) -> None:
    if job.status != ImportJob.Status.PENDING:
        raise UploadError(f"import {job.pk} is {job.status}; it no longer takes files")


def _file_dir(job: ImportJob, upload_id: str) -> Path:
    if not _UPLOAD_ID.match(upload_id):
        raise UploadError("unknown upload id")
    directory = job_dir(job) / "files" / upload_id
    if not (directory / "meta.json").exists():
        raise UploadError("unknown upload id")
    return directory


def _data_path(directory: Path) -> Path:
    # Named by upload id so the importer's "archive:member" names map back to the dropped file.
    return directory / f"{directory.name}.upload"


def _state(directory: Path) -> UploadedFile:
    meta = json.loads((directory / "meta.json").read_text())
    data = _data_path(directory)
    return UploadedFile(meta["upload_id"], meta["name"], meta["size"], data.stat().st_size if data.exists() else 0)


def register_upload(*, job: ImportJob, name: str, size: int) -> UploadedFile:
    """Announce one file of the job; return its upload id and the offset to send from (0)."""
    _require_pending(job)
    if problem := text_problem(name):
        raise UploadError(f"the file name {problem}")
    limit = settings.READERBOARD["UPLOAD_MAX_BYTES"]
    if size < 0:
        raise UploadError("size must not be negative")
    if size > limit:
        raise UploadError(f"{clean_display_name(name)} is {size} bytes; the limit is {limit} bytes per file")
    files = job_dir(job) / "files"
    if sum(1 for _ in files.iterdir()) >= MAX_FILES_PER_JOB:
        raise UploadError(f"an upload holds at most {MAX_FILES_PER_JOB} files; start another for the rest")
    upload_id = uuid.uuid4().hex
    directory = files / upload_id
    directory.mkdir()
    _data_path(directory).touch()
    meta = {"upload_id": upload_id, "name": clean_display_name(name), "size": int(size)}
    (directory / "meta.json").write_text(json.dumps(meta))
    return UploadedFile(upload_id, meta["name"], meta["size"], 0)


def upload_state(*, job: ImportJob, upload_id: str) -> UploadedFile:
    """Return how many bytes of the file the server holds, for resuming."""
    return _state(_file_dir(job, upload_id))


def append_chunk(*, job: ImportJob, upload_id: str, offset: int, chunk: bytes) -> UploadedFile:
    """Append chunk at offset; a repeated chunk that is already stored is accepted without writing twice."""
    _require_pending(job)
    if len(chunk) > MAX_CHUNK_BYTES:
        raise UploadError(f"a chunk may hold at most {MAX_CHUNK_BYTES} bytes")
    directory = _file_dir(job, upload_id)
    state = _state(directory)
    if offset + len(chunk) > state.size:
        raise UploadError(f"chunk ends at byte {offset + len(chunk)}, past the declared size {state.size}")
    with open(_data_path(directory), "r+b") as stored:
        # One writer at a time: two tabs resuming the same file must not interleave bytes.
        fcntl.flock(stored, fcntl.LOCK_EX)
        current = stored.seek(0, 2)
        if offset + len(chunk) <= current and offset <= current:
            # A retry of a chunk whose answer was lost: already stored.
            return UploadedFile(state.upload_id, state.name, state.size, current)
        if offset != current:
            raise OffsetMismatch(current)
        stored.write(chunk)
        stored.flush()
        current = stored.tell()
    return UploadedFile(state.upload_id, state.name, state.size, current)


def uploaded_files(job: ImportJob) -> list[UploadedFile]:
    """Return every announced file of the job, in announcement order."""
    files = job_dir(job) / "files"
    if not files.exists():
        return []
    states = [_state(directory) for directory in files.iterdir() if (directory / "meta.json").exists()]
    return sorted(states, key=lambda state: (directory_mtime(files / state.upload_id), state.name))


def directory_mtime(path: Path) -> float:
    return (path / "meta.json").stat().st_mtime


def close_upload(*, job: ImportJob) -> ImportJob:
    """Close the upload for importing (call inside a transaction); refuse unfinished files."""
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    _require_pending(job)
    files = uploaded_files(job)
    if not files:
        raise UploadError("no files were uploaded")
    unfinished = [state.name for state in files if not state.complete]
    if unfinished:
        raise UploadError(f"{len(unfinished)} file(s) are not fully uploaded, e.g. {unfinished[0]}")
    job.status = ImportJob.Status.RUNNING
    job.files_total = len(files)
    job.files_done = 0
    job.save(update_fields=["status", "files_total", "files_done"])
    return job


def _display_name(importer_name: str, files: Iterable[UploadedFile], root: Path) -> str:
    """Map the importer's name (a stored path, or '<stored name>:<member>') back to what the admin dropped."""
    for state in files:
        stored = _data_path(root / state.upload_id)
        if importer_name == str(stored):
            return state.name
        member_prefix = f"{stored.name}:"
        if importer_name.startswith(member_prefix):
            return f"{state.name}:{importer_name[len(member_prefix) :]}"
    return importer_name


def run_import(*, job_id: int) -> ImportJob:
    """Import a started job's files, recording progress and the per-file report; rerunning a finished job is a no-op."""
    job = ImportJob.objects.select_related("collection").get(pk=job_id)
    if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
        return job
    root = job_dir(job) / "files"
    files = uploaded_files(job)
    last_saved = 0.0

    def progress(done: int, total: int, outcome: FileOutcome) -> None:
        nonlocal last_saved
        now = time.monotonic()
        if now - last_saved >= _PROGRESS_EVERY_S or done == total:
            ImportJob.objects.filter(pk=job.pk).update(files_done=done, files_total=total)
            last_saved = now

    try:
        report = import_paths(
            [_data_path(root / state.upload_id) for state in files],
            collection_name=job.collection.name if job.collection else None,
            progress=progress,
            deidentify=job.deidentify,
            nifti=nifti_options_of(job),
        )
    except Exception as error:  # noqa: BLE001 - the admin must see why, not a job stuck at "running"
        job.status = ImportJob.Status.FAILED
        job.error = f"{type(error).__name__}: {error}"
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        raise
    rows = [
        {
            "name": _display_name(outcome.name, files, root),
            "status": outcome.status,
            "reason": outcome.reason,
            "sop_instance_uid": outcome.sop_instance_uid,
            "phi": list(outcome.phi_attributes),
        }
        for outcome in report.outcomes
    ]
    job.report = rows
    job.summary = {**report.summary(), "files": len(rows)}
    job.files_total = job.files_done = len(rows)
    job.status = ImportJob.Status.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["report", "summary", "files_total", "files_done", "status", "finished_at"])
    shutil.rmtree(root, ignore_errors=True)
    return job
