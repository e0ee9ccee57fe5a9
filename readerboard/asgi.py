"""ASGI entry point: HTTP through Django (cached DICOMweb reads through a fast path), WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from readerboard.routing import websocket_urlpatterns  # noqa: E402
from viewer.dicomweb.asgi_fast import fast_path_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": fast_path_application(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
