"""ASGI entry point: HTTP through Django (the reading API's hot paths in one thread hop, cached DICOMweb
reads through a fast path), WebSockets through Channels."""

import gc
import os
import sys

from readerboard.allocator import tune_for_image_work

tune_for_image_work()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import get_resolver  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from readerboard.admission import AdmissionLimit  # noqa: E402
from readerboard.body_limit import BodyLimit  # noqa: E402
from readerboard.lifespan import lifespan_application  # noqa: E402
from readerboard.one_hop import one_hop_application  # noqa: E402
from readerboard.overload import RETRY_AFTER_S  # noqa: E402
from readerboard.routing import websocket_urlpatterns  # noqa: E402
from viewer.dicomweb.asgi_fast import fast_path_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": AdmissionLimit(
            BodyLimit(one_hop_application(fast_path_application(django_asgi_app))),
            max_in_flight=settings.MAX_REQUESTS_IN_FLIGHT,
            retry_after_s=RETRY_AFTER_S,
        ),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan_application,
    }
)

# Load the URLconf and every view module now, then move everything allocated so far out of the
# garbage collector's reach: the full collections a busy server triggers would otherwise walk
# these ~200k long-lived objects again and again (measured: +35% frames/s, far lower p99).
get_resolver().url_patterns  # noqa: B018 - imports every view module
gc.collect()
gc.freeze()

# Cached frames are served on the event loop while Django views run in threads; a view waiting for the
# GIL after each database round trip waited up to the default 5 ms switch interval every time, which
# under a booth's frame traffic made a 20-query view take 150 ms+ with a few ms of its own CPU.
sys.setswitchinterval(float(os.environ.get("READERBOARD_GIL_SWITCH_INTERVAL_S", "0.0005")))
