"""WebSocket routes of the annotations app (leaderboard, dashboards, export progress)."""

websocket_urlpatterns: list = []
