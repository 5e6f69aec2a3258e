"""The embedded channel layer: Channels' in-memory layer with a fan-out that scales.

``InMemoryChannelLayer`` sweeps every channel and group membership on every send and receive and
starts a task per member of a group: with N WebSocket clients a broadcast costs O(N^2). This one
sweeps expired messages and memberships at most once a second and delivers a group message to its
members in one loop, with one copy shared by the members (consumers never mutate events: the
stream's and the legacy consumer's handlers only read them). A full member channel drops the
message, as the in-memory and Redis layers do; the stream's consumers drain their channel without
waiting on sockets, so that happens only to a stalled process.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy

from channels.layers import InMemoryChannelLayer

SWEEP_EVERY = 1.0  # seconds between sweeps of expired messages and memberships


class InProcessChannelLayer(InMemoryChannelLayer):
    """One process's channel layer (the embedded default; Redis when scaled)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The base class leaves the patterns uncompiled (get_capacity would then fail on them).
        self.channel_capacity = self.compile_capacities(self.channel_capacity)
        self._swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        super()._clean_expired()

    async def group_send(self, group: str, message: dict) -> None:
        """Queue one copy of ``message`` on every member channel of ``group``."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        shared = (time.time() + self.expiry, deepcopy(message))
        for channel in list(members):
            queue = self.channels.get(channel)
            if queue is None:
                queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
            try:
                queue.put_nowait(shared)
            except asyncio.QueueFull:
                continue  # ChannelFull in the base layer, which group_send ignores too
