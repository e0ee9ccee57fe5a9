"""WebSocket routes of every app, gathered in one list for asgi.py."""

from annotations.console.routing import websocket_urlpatterns as console_routes
from annotations.routing import websocket_urlpatterns as reading_routes

websocket_urlpatterns = [*reading_routes, *console_routes]
