"""WebSocket routes of every app, gathered in one list for asgi.py."""

from annotations.routing import websocket_urlpatterns as annotation_routes

websocket_urlpatterns = [*annotation_routes]
