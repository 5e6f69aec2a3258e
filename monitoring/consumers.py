"""WebSocket consumer for live groups: ``market.<symbol>``, ``orders``, ``portfolio``, ``risk``."""

from __future__ import annotations

import re

from channels.generic.websocket import AsyncJsonWebsocketConsumer

GROUP_PATTERN = re.compile(
    r"^(market\.[A-Z0-9]{1,16}-[A-Z0-9]{1,16}|orders|portfolio|risk|system)$"
)
UNAUTHENTICATED = 4401
UNKNOWN_GROUP = 4404


class LiveGroupConsumer(AsyncJsonWebsocketConsumer):
    """Authenticate, join one group, forward its messages as JSON."""

    group: str = ""

    async def connect(self) -> None:
        """Accept authenticated users asking for a known group; refuse everyone else."""
        user = self.scope.get("user")
        group = self.scope["url_route"]["kwargs"]["group"]
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        if not GROUP_PATTERN.match(group):
            await self.close(code=UNKNOWN_GROUP)
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        """Leave the group."""
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def group_message(self, event: dict) -> None:
        """Forward a broadcast to the client."""
        await self.send_json({"group": self.group, "kind": event["kind"], "data": event["data"]})
