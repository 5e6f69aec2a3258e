"""ASGI entry point: HTTP (dashboard, admin, API) and authenticated WebSockets.

WebSockets are not wrapped in an Origin validator: token clients (native apps) send no Origin,
and ``rrr_site.ws_auth`` checks the Origin only where it matters, for session cookies.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")

from rrr_site.http_handler import get_http_application  # noqa: E402

# Django's handler with the sync middleware chain entered once per request (rrr_site.http_handler)
django_asgi_app = get_http_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from rrr_site.routing import websocket_urlpatterns  # noqa: E402
from rrr_site.ws_auth import TokenAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
