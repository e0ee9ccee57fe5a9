"""WebSocket routes of the annotations app (leaderboard, dashboards, export progress)."""

from django.urls import path

from annotations.consumers import LeaderboardConsumer

websocket_urlpatterns: list = [
    path("ws/leaderboard/", LeaderboardConsumer.as_asgi()),
]
