"""WebSocket routes of the console."""

from django.urls import path

from annotations.console.consumers import TaskDashboardConsumer

websocket_urlpatterns = [
    path("ws/console/tasks/<int:task_id>/", TaskDashboardConsumer.as_asgi()),
]
