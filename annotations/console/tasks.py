"""Celery tasks of the console: thin wrappers that load an id and call a console service."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from annotations.console.prediction_uploads import run_prediction_import
from annotations.console.uploads import close_upload, run_import
from annotations.models import PredictionImportJob
from viewer.models import ImportJob


@shared_task(name="annotations.console.tasks.import_upload", acks_late=True)
def import_upload(job_id: int) -> dict:
    """Import the files of a started upload job; a rerun of a finished job changes nothing."""
    job = run_import(job_id=job_id)
    return {"job": job.pk, "status": job.status, "summary": job.summary}


@transaction.atomic
def start_import(*, job: ImportJob) -> ImportJob:
    """Close the upload and queue its import once the transaction commits (eager Celery runs it then)."""
    job = close_upload(job=job)
    transaction.on_commit(lambda: import_upload.delay(job.pk))
    return job


@shared_task(name="annotations.console.tasks.import_prediction_upload", acks_late=True)
def import_prediction_upload(job_id: int) -> dict:
    """Import the prediction files of an upload job; a rerun of a finished job changes nothing."""
    job = run_prediction_import(job_id=job_id)
    return {"job": job.pk, "status": job.status, "files": len(job.report)}


def start_prediction_import(*, job: PredictionImportJob) -> PredictionImportJob:
    """Queue the import of a stored prediction upload once the transaction commits (eager Celery runs it then)."""
    transaction.on_commit(lambda: import_prediction_upload.delay(job.pk))
    return job
