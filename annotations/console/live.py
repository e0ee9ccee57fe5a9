"""Tell open task dashboards that a task changed, over the channel layer.

`notify_task_changed(task_id)` is the one entry point: the read submission service,
consensus tasks and the console call it (or rely on the post_save receiver below,
which fires after the read's transaction commits, off the request thread when there is a broker:
see `annotations.background`). It sends only a task id, never
marks or results: the dashboard consumer re-reads the figures on the server and
only sends them to admins and researchers.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from annotations import background
from annotations.models import CaseConsensus, Read

logger = logging.getLogger(__name__)


def task_group(task_id: int) -> str:
    """Return the channel-layer group name of one task's dashboards."""
    return f"task-{task_id}"


def notify_task_changed(task_id: int) -> None:
    """Ask every open dashboard of the task to refresh; never raises (a dashboard is not worth a failed read)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(task_group(task_id), {"type": "task.changed", "task_id": task_id})
    except Exception:  # noqa: BLE001 - Redis down must not break read submission
        logger.warning("could not notify dashboards of task %s", task_id, exc_info=True)


@receiver(post_save, sender=Read, dispatch_uid="console-read-saved")
def _read_saved(sender, instance: Read, created: bool, **kwargs) -> None:
    if created:
        task_id = instance.case.task_id
        background.on_commit_soon(lambda: notify_task_changed(task_id), coalesce_key=f"task-changed-{task_id}")


@receiver(post_save, sender=CaseConsensus, dispatch_uid="console-consensus-saved")
def _consensus_saved(sender, instance: CaseConsensus, **kwargs) -> None:
    task_id = instance.case.task_id
    transaction.on_commit(lambda: notify_task_changed(task_id))
