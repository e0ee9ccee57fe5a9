"""WebSocket routes of the console."""

from django.urls import path

from annotations.console.consumers import ExportProgressConsumer, TaskDashboardConsumer

websocket_urlpatterns = [
    path("ws/console/tasks/<int:task_id>/", TaskDashboardConsumer.as_asgi()),
    path("ws/console/exports/<int:job_id>/", ExportProgressConsumer.as_asgi()),
]
