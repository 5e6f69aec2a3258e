"""ASGI entry point: HTTP (dashboard, admin, API) and authenticated WebSockets.

WebSockets are not wrapped in an Origin validator: token clients (native apps) send no Origin,
and ``rrr_site.ws_auth`` checks the Origin only where it matters, for session cookies.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from rrr_site.routing import websocket_urlpatterns  # noqa: E402
from rrr_site.ws_auth import TokenAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
