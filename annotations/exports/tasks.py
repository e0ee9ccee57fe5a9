"""Export Celery tasks: run one ExportJob through the export service and tell the page how far it got.

Thin: load the job, call `run_export`, broadcast progress to the channel-layer
group `export-<job id>`. A rerun of a finished job is a no-op (run_export checks),
and a rerun after a lost worker rewrites the file atomically.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer

from annotations.exports import run_export
from annotations.models import ExportJob

__all__ = ["export_group", "progress_message", "run_export_job"]

logger = logging.getLogger(__name__)


def export_group(job_id: int) -> str:
    """The channel-layer group of one export job's pages."""
    return f"export-{job_id}"


def progress_message(job: ExportJob) -> dict:
    """The message sent to `export-<id>`: status and progress only, never file contents or reader names."""
    return {
        "type": "export.progress",
        "job_id": job.pk,
        "status": job.status,
        "progress_done": job.progress_done,
        "progress_total": job.progress_total,
        "download_url": f"/api/exports/{job.pk}/download/" if job.status == ExportJob.Status.DONE else None,
        "error": job.error,
    }


def _broadcast(job: ExportJob) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(export_group(job.pk), progress_message(job))
    except Exception:  # noqa: BLE001 - a page that cannot be told must not fail the export; it can poll
        logger.warning("could not broadcast progress of export job %s", job.pk, exc_info=True)


@shared_task(acks_late=True)
def run_export_job(job_id: int) -> str:
    """Run export job `job_id`; return its final status."""
    job = ExportJob.objects.select_related("task").get(pk=job_id)
    run_export(job=job, progress=_broadcast)
    return job.status
