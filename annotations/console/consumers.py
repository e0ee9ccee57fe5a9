"""The console's live sockets: a task's dashboard, and an export job's progress.

Dashboard messages on the group carry only a task id (see live.py); the consumer
recomputes the figures on the server. Export progress messages come from the export
Celery task (annotations/exports/tasks.py) and carry status and counts only. Neither
socket may ever accept a reader or an anonymous visitor, and a researcher follows
only their own export jobs, as the export API shows them.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from annotations.api.exports import visible_jobs
from annotations.booth.roles import is_researcher_or_admin
from annotations.console.live import task_group
from annotations.console.selectors import task_dashboard
from annotations.exports.tasks import export_group, progress_message
from annotations.models import Task

FORBIDDEN = 4403
NOT_FOUND = 4404


@database_sync_to_async
def _may_watch(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and is_researcher_or_admin(user))


@database_sync_to_async
def _dashboard(task_id: int) -> dict | None:
    task = Task.objects.filter(pk=task_id).first()
    return task_dashboard(task=task) if task else None


class TaskDashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.task_id = int(self.scope["url_route"]["kwargs"]["task_id"])
        if not await _may_watch(self.scope.get("user")):
            await self.close(code=FORBIDDEN)
            return
        snapshot = await _dashboard(self.task_id)
        if snapshot is None:
            await self.close(code=NOT_FOUND)
            return
        await self.channel_layer.group_add(task_group(self.task_id), self.channel_name)
        await self.accept()
        await self.send_json({"type": "dashboard", "dashboard": snapshot})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "task_id"):
            await self.channel_layer.group_discard(task_group(self.task_id), self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The page may ask for a refresh after reconnecting; nothing else is accepted.
        if isinstance(content, dict) and content.get("type") == "refresh":
            await self.task_changed({"task_id": self.task_id})

    async def task_changed(self, event: dict) -> None:
        snapshot = await _dashboard(self.task_id)
        if snapshot is not None:
            await self.send_json({"type": "dashboard", "dashboard": snapshot})


@database_sync_to_async
def _export_progress(user, job_id: int) -> dict | None:
    """The job's progress message when this user may see the job (admins: all, researchers: their own)."""
    job = visible_jobs(user).filter(pk=job_id).first()
    return progress_message(job) if job else None


class ExportProgressConsumer(AsyncJsonWebsocketConsumer):
    """Sends an export job's progress now and on every update; the page polls the API if this socket fails."""

    async def connect(self) -> None:
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        user = self.scope.get("user")
        if not await _may_watch(user):
            await self.close(code=FORBIDDEN)
            return
        snapshot = await _export_progress(user, self.job_id)
        if snapshot is None:
            await self.close(code=NOT_FOUND)
            return
        # Join before sending the snapshot, so no update between the two is lost.
        await self.channel_layer.group_add(export_group(self.job_id), self.channel_name)
        await self.accept()
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "job_id"):
            await self.channel_layer.group_discard(export_group(self.job_id), self.channel_name)

    async def export_progress(self, event: dict) -> None:
        await self.send_json(event)
