"""One channel-layer subscription per stream channel per process, fanned out to local clients.

Without a hub every ``/ws/v1/stream`` connection would join the channel layer's group itself: a
broadcast to N clients then costs N layer messages (N Redis writes when scaled), N consumer
wake-ups and N JSON encodings. ``StreamHub`` joins each group once per process on a channel of
its own, reads what is published there, encodes each message's envelope once (``Frame``: the
connection's ``seq`` is spliced in when sent) and hands it to the subscribed connections'
outboxes without waiting on any socket. Each connection's sender task writes its outbox.

A publisher with many messages at once (``runtrader``'s broadcaster) sends each channel's in one
layer message (``apublish_batch``, a ``stream.batch`` event): a channel-layer send over Redis is
three round trips, and one message per send held a busy engine to a few sends a second.

The hub also re-joins its groups every ``REJOIN_EVERY`` seconds: channel layers forget a group
membership after ``group_expiry`` (a day by default), which would silently end the stream of a
long-lived connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Protocol

from monitoring import realtime
from monitoring.engine.stream import Channel, Frame, channel_parse, frame_encode
from monitoring.realtime import EVENT_TYPE, group_of, stream_jsonable

logger = logging.getLogger(__name__)

HUB_PREFIX = "stream-hub"  # the hub's channel name prefix (settings give it a deep capacity)
SLICE = 64  # subscribers offered a message per turn of the event loop
REJOIN_EVERY = 3600.0  # seconds; well inside any layer's group_expiry (settings: a day)
BATCH_TYPE = "stream.batch"  # several messages of one channel (consumers' ``stream_batch``)


def stream_batch_event(channel: str, messages: list[tuple[str, dict, str]]) -> dict:
    """Return one channel-layer event carrying ``messages`` (kind, data, ts) of ``channel``.

    Numbered like one message (``origin``, ``pseq``): a hub that misses it counts one lost (at
    least one message was), which for market data is told as dropped and for any other channel
    closes its subscribers with 4429 (they resync from snapshots).
    """
    return {
        "type": BATCH_TYPE,
        "channel": channel,
        "messages": [
            {"kind": kind, "ts": ts, "data": stream_jsonable(data)} for kind, data, ts in messages
        ],
        "origin": realtime.ORIGIN,
        "pseq": next(realtime._PSEQ.setdefault(channel, itertools.count(1))),
    }


async def apublish_batch(layer, channel: str, messages: list[tuple[str, dict, str]]) -> None:
    """Send ``messages`` (kind, data, ts) of ``channel`` in order, in one layer message."""
    if len(messages) == 1:
        kind, data, ts = messages[0]
        await realtime.apublish(layer, channel, kind, data, ts)
        return
    await layer.group_send(group_of(channel), stream_batch_event(channel, messages))


def stream_events(event: dict) -> list[dict]:
    """Return the stream messages a layer event carries: itself, or a batch's, in order."""
    if event.get("type") != BATCH_TYPE:
        return [event]
    base = {"type": EVENT_TYPE, "channel": event.get("channel", "")}
    return [{**base, **message} for message in event.get("messages", ())]


class Subscriber(Protocol):
    """A connection the hub hands messages to (``monitoring.stream.StreamConsumer``)."""

    def offer(self, channel: Channel, event: dict, frame: Frame, lost: int) -> None:
        """Queue a published message (``lost``: how many before it the layer dropped)."""


class StreamHub:
    """This process's subscription to the stream's channel-layer groups (one per loop)."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.channel_name: str | None = None
        self.members: dict[str, dict[Subscriber, None]] = {}  # channel -> connections, ordered
        self.joined: dict[str, asyncio.Future] = {}  # channel -> done once the layer has us
        self.parsed: dict[str, Channel] = {}
        self.upstream: dict[tuple[str, str], int] = {}  # (origin, channel) -> last pseq seen
        self.reader: asyncio.Task | None = None
        self.rejoiner: asyncio.Task | None = None

    @classmethod
    def of(cls, layer) -> StreamHub:
        """Return the hub of ``layer`` on the running loop, created on first use."""
        hub = getattr(layer, "_stream_hub", None)
        if hub is None or hub.loop is not asyncio.get_running_loop():
            hub = cls(layer)
            layer._stream_hub = hub
        return hub

    async def join(self, name: str, subscriber: Subscriber) -> None:
        """Add ``subscriber`` to channel ``name``; return once the layer delivers it here."""
        if self.channel_name is None:
            self.channel_name = await self.layer.new_channel(prefix=HUB_PREFIX)
        self._start()
        members = self.members.get(name)
        if members is None:
            members = self.members[name] = {}
            self.parsed[name] = channel_parse(name)
            self.joined[name] = joined = self.loop.create_future()
            try:
                await self.layer.group_add(name, self.channel_name)
            except BaseException as exc:
                self._drop_channel(name)
                joined.set_exception(exc)
                joined.exception()  # retrieved: the other joiners see it through shield
                raise
            joined.set_result(None)
        members[subscriber] = None
        await asyncio.shield(self.joined[name])

    async def leave(self, name: str, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from ``name``; the last one out leaves the layer's group."""
        members = self.members.get(name)
        if members is None or subscriber not in members:
            return
        del members[subscriber]
        if members:
            return
        self._drop_channel(name)
        with contextlib.suppress(Exception):  # the layer forgets it at group_expiry anyway
            await self.layer.group_discard(name, self.channel_name)
        if not self.members:
            self._stop()

    def _drop_channel(self, name: str) -> None:
        self.members.pop(name, None)
        self.joined.pop(name, None)
        self.parsed.pop(name, None)
        for key in [k for k in self.upstream if k[1] == name]:
            del self.upstream[key]

    def _start(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = self.loop.create_task(self._read(), name="ws-stream-hub")
        if self.rejoiner is None or self.rejoiner.done():
            self.rejoiner = self.loop.create_task(self._rejoin(), name="ws-stream-hub-rejoin")

    def _stop(self) -> None:
        for task in (self.reader, self.rejoiner):
            if task is not None:
                task.cancel()
        self.reader = self.rejoiner = None

    async def _read(self) -> None:
        while True:
            message = await self.layer.receive(self.channel_name)
            try:
                await self.deliver(message)
            except Exception:  # one bad message must not end every client's stream
                logger.exception("stream hub could not deliver a message")

    async def _rejoin(self) -> None:
        """Refresh every membership before the layer's ``group_expiry`` can end it."""
        while True:
            await asyncio.sleep(REJOIN_EVERY)
            for name in list(self.members):
                try:
                    await self.layer.group_add(name, self.channel_name)
                except Exception:  # Redis away for a moment: the next round tries again
                    logger.exception("stream hub could not re-join %s", name)

    async def deliver(self, event: dict) -> None:
        """Encode each published message once and offer it to every local subscriber.

        In slices of ``SLICE`` offers with a turn of the loop between them: in the embedded
        layout the engine shares this loop, and a due tick then waits for one slice (a fraction
        of a millisecond), not for the whole fan-out.
        """
        if event.get("type") not in (EVENT_TYPE, BATCH_TYPE):
            return
        name = event.get("channel", "")
        members = self.members.get(name)
        if not members:
            return
        lost = self._lost(name, event)
        channel = self.parsed[name]
        offered = 0
        for message in stream_events(event):
            frame = frame_encode(name, message["kind"], message["ts"], message["data"])
            for subscriber in list(members):
                if offered and offered % SLICE == 0:
                    await asyncio.sleep(0)
                offered += 1
                subscriber.offer(channel, message, frame, lost)
            lost = 0

    def _lost(self, name: str, event: dict) -> int:
        """Return how many messages of ``name`` the layer dropped just before this one.

        Publishers number their messages per channel (``origin``, ``pseq``); a jump means the
        layer dropped some (this process's channel was full).
        """
        origin, pseq = event.get("origin"), event.get("pseq")
        if origin is None or not isinstance(pseq, int):
            return 0
        key = (origin, name)
        last, self.upstream[key] = self.upstream.get(key), pseq
        if last is None or pseq <= last + 1:
            return 0
        return pseq - last - 1
