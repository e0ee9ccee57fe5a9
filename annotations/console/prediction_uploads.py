"""Model predictions uploaded on the console's task page, imported in the background by predictions.services.

An admin's form post becomes a PredictionImportJob whose files are stored under
DATA_DIR/uploads/predictions-<id>/<n>/<file name>: each in a server-made folder, so a file keeps the name
the importer matches it to its case by (case_12.nii.gz) and no client-sent path is ever used. A Celery
task then hands the files one at a time (zip members extracted by viewer's safe_extract_zip) to
predictions.services.import_predictions, records progress and the per-file report, and finally asks
show_to_readers when the admin ticked it. This module must never read a prediction itself (that is the
importer's job) nor hold every file's import in one transaction: a bad file must not undo the good ones.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.console.uploads import MAX_FILES_PER_JOB, UploadError, clean_display_name
from annotations.core.field_checks import text_problem
from annotations.models import ModelPrediction, PredictionImportJob, Task
from annotations.predictions.errors import PredictionError
from annotations.predictions.services import PREDICTION_SUFFIXES, PredictionImport, import_predictions, show_to_readers
from viewer.services.dicom_import import UnsafeArchiveError, safe_extract_zip

logger = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".csv", ".zip")
MODEL_NAME_MAX = ModelPrediction._meta.get_field("model_name").max_length
MAX_FILE_NAME_BYTES = 200
IMPORTED, REFUSED = "imported", "refused"


class UploadedPrediction(Protocol):
    """What the view hands over for each file (Django's UploadedFile): its name, size and content in chunks."""

    name: str | None
    size: int | None

    def chunks(self, chunk_size: int | None = None): ...


def job_dir(job: PredictionImportJob) -> Path:
    """Return the absolute folder of a job's uploaded files."""
    return settings.DATA_DIR / job.upload_dir


def _checked_model_name(model_name: str) -> str:
    name = model_name.strip()
    if not name:
        raise UploadError("a model name is required")
    if problem := text_problem(name):
        raise UploadError(f"the model name {problem}")
    if len(name) > MODEL_NAME_MAX:
        raise UploadError(f"the model name must be at most {MODEL_NAME_MAX} characters")
    return name


def _checked_file_name(upload: UploadedPrediction) -> str:
    raw = upload.name or ""
    if problem := text_problem(raw):
        raise UploadError(f"the file name {problem}")
    name = PurePosixPath(clean_display_name(raw)).name
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise UploadError(f"{name} is not a prediction file: send .nii, .nii.gz, .dcm, .csv or a .zip of them")
    if len(name.encode()) > MAX_FILE_NAME_BYTES:
        # The file keeps its name on disk, and file systems stop at 255 bytes.
        raise UploadError(f"{name[:40]}…{name[-20:]} has a name longer than {MAX_FILE_NAME_BYTES} bytes; rename it")
    limit = settings.READERBOARD["UPLOAD_MAX_BYTES"]
    if (upload.size or 0) > limit:
        raise UploadError(f"{name} is {upload.size} bytes; the limit is {limit} bytes per file")
    return name


def create_prediction_import(
    *,
    task: Task,
    user,
    model_name: str,
    files: Sequence[UploadedPrediction],
    show_to_readers: bool = False,
) -> PredictionImportJob:
    """Store the uploaded files as a running import of `model_name`'s predictions of the task; UploadError if refused.

    Every file is checked (name, kind, size) before any is stored, so a refused upload leaves nothing behind.
    """
    name = _checked_model_name(model_name)
    if not files:
        raise UploadError("choose at least one prediction file")
    if len(files) > MAX_FILES_PER_JOB:
        raise UploadError(f"an upload holds at most {MAX_FILES_PER_JOB} files; start another for the rest")
    names = [_checked_file_name(upload) for upload in files]
    with transaction.atomic():
        job = PredictionImportJob.objects.create(
            task=task, created_by=user, model_name=name, show_to_readers=show_to_readers, files_total=len(files)
        )
        job.upload_dir = f"uploads/predictions-{job.pk}"
        job.save(update_fields=["upload_dir"])
        try:
            for index, (upload, file_name) in enumerate(zip(files, names, strict=True)):
                folder = job_dir(job) / f"{index:05d}"
                folder.mkdir(parents=True)
                with open(folder / file_name, "wb") as sink:
                    for chunk in upload.chunks():
                        sink.write(chunk)
        except BaseException:
            shutil.rmtree(job_dir(job), ignore_errors=True)
            raise
    return job


def _staged_files(job: PredictionImportJob) -> tuple[list[tuple[str, Path]], list[dict]]:
    """Return (report name, path) of every prediction file of the job, zips opened, and the rows of refused zips."""
    staged: list[tuple[str, Path]] = []
    refused: list[dict] = []
    for folder in sorted(path for path in job_dir(job).iterdir() if path.is_dir()):
        uploaded = next((path for path in folder.iterdir() if path.is_file()), None)
        if uploaded is None:
            continue
        if not uploaded.name.lower().endswith(".zip"):
            staged.append((uploaded.name, uploaded))
            continue
        try:
            members = safe_extract_zip(uploaded, folder / "extracted")
        except UnsafeArchiveError as error:
            refused.append(_refused_row(uploaded.name, f"unsafe zip: {error}"))
            continue
        found = 0
        for index, (member_name, member_path) in enumerate(members):
            base = PurePosixPath(member_name.replace("\\", "/")).name
            # Like a folder given to the command: only prediction files count (model outputs carry plans.json etc.).
            if not base.endswith(PREDICTION_SUFFIXES):
                continue
            # safe_extract_zip stores members under numbered names; the importer needs the member's own name.
            named = folder / "members" / f"{index:06d}" / base
            named.parent.mkdir(parents=True, exist_ok=True)  # exists when a lost worker's job runs again
            os.replace(member_path, named)
            staged.append((f"{uploaded.name}:{member_name}", named))
            found += 1
        if not found:
            refused.append(_refused_row(uploaded.name, "the zip holds no .nii, .nii.gz, .dcm or .csv file"))
    return staged, refused


def _refused_row(name: str, reason: str) -> dict:
    return {"name": name, "status": REFUSED, "reason": reason, "case": None, "lesion_voxels": 0, "measured_lesions": 0}


def _report_row(name: str, result: PredictionImport) -> dict:
    if result.error or result.prediction is None:
        return _refused_row(name, result.error)
    prediction = result.prediction
    return {
        "name": name,
        "status": IMPORTED,
        "reason": "",
        "case": prediction.case_id,
        "lesion_voxels": prediction.voxel_count,
        "measured_lesions": len(prediction.lesion_marks),
    }


def _import_one(*, job: PredictionImportJob, name: str, path: Path) -> list[dict]:
    try:
        results = import_predictions(task=job.task, model_name=job.model_name, paths=[path])
    except Exception as error:  # noqa: BLE001 - one unreadable file must not stop the others; the admin sees why
        logger.exception("prediction import %s: %s failed", job.pk, name)
        return [_refused_row(name, f"could not be imported ({type(error).__name__}: {error})")]
    return [_report_row(name, result) for result in results] or [_refused_row(name, "no prediction in the file")]


def run_prediction_import(*, job_id: int) -> PredictionImportJob:
    """Import a job's files one by one, recording progress and the per-file report; a finished job is left as is.

    A rerun (a worker lost mid-job) imports the files again, which replaces the same predictions.
    """
    job = PredictionImportJob.objects.select_related("task").get(pk=job_id)
    if job.status != PredictionImportJob.Status.RUNNING:
        return job
    try:
        staged, report = _staged_files(job)
        job.files_total, job.files_done = len(staged) + len(report), len(report)
        job.save(update_fields=["files_total", "files_done"])
        for name, path in staged:
            report += _import_one(job=job, name=name, path=path)
            job.files_done += 1
            PredictionImportJob.objects.filter(pk=job.pk).update(files_done=job.files_done)
        if job.show_to_readers:
            try:
                show_to_readers(task=job.task, model_name=job.model_name)
            except PredictionError as error:
                job.show_to_readers_refusal = str(error)
    except Exception as error:  # noqa: BLE001 - the admin must see why, not a job stuck at "running"
        job.status = PredictionImportJob.Status.FAILED
        job.error = f"{type(error).__name__}: {error}"
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        raise
    job.report = report
    job.status = PredictionImportJob.Status.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["report", "show_to_readers_refusal", "status", "finished_at"])
    shutil.rmtree(job_dir(job), ignore_errors=True)
    return job
