"""Celery tasks of the console: thin wrappers that load an id and call a console service."""

from __future__ import annotations

from celery import shared_task

from annotations.console.uploads import run_import


@shared_task(name="annotations.console.tasks.import_upload", acks_late=True)
def import_upload(job_id: int) -> dict:
    """Import the files of a started upload job; a rerun of a finished job changes nothing."""
    job = run_import(job_id=job_id)
    return {"job": job.pk, "status": job.status, "summary": job.summary}
