"""WebSocket URL routes, collected from the apps."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from monitoring.consumers import NOT_FOUND, LiveGroupConsumer
from monitoring.stream import StreamConsumer


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """Close any WebSocket path we do not serve with 4404 instead of crashing the router."""

    async def connect(self) -> None:
        """Accept, then close with "not found"."""
        await self.accept()
        await self.close(code=NOT_FOUND, reason="unknown route")


websocket_urlpatterns = [
    path("ws/v1/stream", StreamConsumer.as_asgi()),  # the protocol of docs/websocket.md
    path("ws/<str:group>/", LiveGroupConsumer.as_asgi()),  # the older one-group-per-socket route
    re_path(r"", UnknownRouteConsumer.as_asgi()),
]
