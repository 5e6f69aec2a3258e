"""One channel-layer subscription per stream channel per process, fanned out to local clients.

Without a hub every ``/ws/v1/stream`` connection would join the channel layer's group itself: a
broadcast to N clients then costs N layer messages (N Redis writes when scaled), N consumer
wake-ups and N JSON encodings. ``StreamHub`` joins each group once per process on a channel of
its own, reads what is published there, encodes each message's envelope once (``Frame``: the
connection's ``seq`` is spliced in when sent) and hands it to the subscribed connections'
outboxes without waiting on any socket. Each connection's sender task writes its outbox.

A publisher with many messages at once (``runtrader``'s broadcaster) sends them in one layer
message for every channel, a bundle (``apublish_bundle``) to the ``BUNDLES`` group, which every
hub joins while it has subscribers: a channel-layer send over Redis is three round trips and a
hub's receive four, so one message per send (or one per channel per round, as a 50-symbol engine
had) outran a loaded hub, whose layer channel then dropped order notices (4429 for everyone).

The hub also re-joins its groups every ``REJOIN_EVERY`` seconds: channel layers forget a group
membership after ``group_expiry`` (a day by default), which would silently end the stream of a
long-lived connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from typing import Protocol

from monitoring import realtime
from monitoring.engine.stream import Channel, Frame, channel_parse, frame_encode
from monitoring.realtime import EVENT_TYPE, stream_jsonable

logger = logging.getLogger(__name__)

HUB_PREFIX = "stream-hub"  # the hub's channel name prefix (settings give it a deep capacity)
SLICE = 64  # offers between looks at the clock
# The longest the hub keeps the event loop before a turn for the rest (the engine, in the
# embedded layout). A turn after every 64 offers capped a loaded process's fan-out at 64 offers a
# loop turn: its hub fell a minute behind the engine and the layer expired order notices.
SLICE_SECONDS = 0.005
# Account, system and backtest messages get longer slices: each goes to every client, and with
# the engine behind the market (its turn between two slices ~50 events) a 5 ms slice moved a
# soak's fills to 50 clients at ~1500 offers a second, slower than they came: notices waited
# in the broadcast queue for minutes. The loop waits at most this long for them.
ACCOUNT_SLICE_SECONDS = 0.025
clock = time.perf_counter
# A bundle older than this when the hub reads it means the hub is behind its layer channel
# (which expires messages after a minute: order notices lost, every client closed 4429). The hub
# then sends only the newest market message of each kind per channel, the rest told as dropped,
# and every account message, so it catches up on the cheap part without losing the other.
BEHIND_SECONDS = 1.0
wall_clock = time.time
REJOIN_EVERY = 3600.0  # seconds; well inside any layer's group_expiry (settings: a day)
BUNDLE_TYPE = "stream.bundle"  # messages of several channels (consumers' ``stream_bundle``)
BUNDLES = "stream-bundles"  # the layer group bundles go to: every hub with subscribers joins it
DELIVERED = "delivered_to"  # a bundle's key: the token of the hub that got it without the layer
_BUNDLE_PSEQ: dict[tuple[str, str], itertools.count] = {}  # (origin, channel) -> numbers


def stream_bundle_event(by_channel: dict[str, list[tuple[str, dict, str]]]) -> dict:
    """Return one layer event carrying, per channel in order, messages (kind, data, ts).

    Each channel's part is numbered (``pseq``, per channel, under an origin of its own so the
    numbers never mix with single messages'): a hub that misses a bundle sees the jump at the
    channel's next part and counts one lost message (at least one was) - told as dropped for
    market data, a 4429 close for any other channel (its clients resync from snapshots).
    """
    origin = f"{realtime.ORIGIN}+bundle"
    parts = []
    for channel, messages in by_channel.items():
        pseq = next(_BUNDLE_PSEQ.setdefault((origin, channel), itertools.count(1)))
        payloads = [{"kind": k, "ts": ts, "data": stream_jsonable(d)} for k, d, ts in messages]
        parts.append([channel, pseq, payloads])
    return {"type": BUNDLE_TYPE, "origin": origin, "sent": time.time(), "channels": parts}


async def apublish_bundle(
    layer, by_channel: dict[str, list[tuple[str, dict, str]]], relay: BundleRelay | None = None
) -> None:
    """Send messages (kind, data, ts) of several channels, each in order, in one layer message.

    This loop's own hub (``runtrader --serve``: the web server shares the engine's loop) gets
    the bundle handed over directly, before the layer send, and skips the layer's copy. Through
    the layer it waited behind every earlier bundle in the hub's layer channel, a FIFO that no
    one conflates: a loaded engine's hub fell a minute behind and the layer expired order
    notices (4429 for every client).

    With ``relay`` the layer send is left to the relay's task (``BundleRelay``) and this returns
    once the local hub has the bundle: the engine's broadcaster then never waits for Redis.
    """
    for channel in by_channel:
        channel_parse(channel)  # a bad name fails here, as a single message's would
    event = stream_bundle_event(by_channel)
    hub = StreamHub.local(layer)
    if hub is not None:
        event[DELIVERED] = hub.token
        try:
            await hub.deliver(event)
        except Exception:  # one bad message must not end the broadcast to other processes
            logger.exception("stream hub could not deliver a bundle")
    if relay is not None:
        relay.put(event)
    else:
        await layer.group_send(BUNDLES, event)


class BundleRelay:
    """Send a publisher's bundles to the channel layer from a task of its own, merged when behind.

    Awaiting each layer send in the broadcaster held every later message back for as long as
    Redis took, and the broadcaster then slept as long again to pace the other processes'
    hubs: a soak's order notices reached this process's own clients minutes late (one bundle's
    hand-over took 35 s on a loaded machine, then the broadcaster slept 35 s). The local hub
    has each bundle already; the relay sends to the others at the pace the layer takes, at
    most one send per ``max(BROADCAST_EVERY, last send)``. Bundles that wait meanwhile go out
    merged in one message: every account part, in order; market parts only from the newest
    (other hubs see the jump in those channels' numbers and tell their clients the drop, as
    for conflation). Past ``ACCOUNT_BACKLOG`` waiting messages the oldest bundles go (other
    hubs then close their clients 4429 and the clients resync from snapshots).
    """

    EVERY = 0.02  # seconds between sends at least
    ACCOUNT_BACKLOG = 100_000

    def __init__(self, layer) -> None:
        self.layer = layer
        self.waiting: list[dict] = []
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()  # nothing waits and no send is under way
        self.drained.set()
        self.task: asyncio.Task | None = None
        self.closing = False
        self.merged = 0  # bundles sent merged into another
        self.dropped = 0  # bundles dropped past ACCOUNT_BACKLOG

    def put(self, event: dict) -> None:
        """Queue a bundle for the layer; never waits."""
        if self.waiting:  # a newer bundle is coming: the older one's market data is stale
            self.waiting[-1] = _account_parts(self.waiting[-1])
        self.waiting.append(event)
        while len(self.waiting) > 1 and _messages(self.waiting[:-1]) > self.ACCOUNT_BACKLOG:
            del self.waiting[0]
            self.dropped += 1
            logger.error("stream relay behind: dropped a bundle of account messages")
        self.drained.clear()
        self.ready.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="stream-relay")

    async def _run(self) -> None:
        while True:
            if not self.waiting:
                self.drained.set()
                self.ready.clear()
                await self.ready.wait()
                continue
            batch = _same_hub_run(self.waiting)
            del self.waiting[: len(batch)]
            self.merged += len(batch) - 1
            began = clock()
            try:
                await self.layer.group_send(BUNDLES, _merged(batch))
            except Exception:  # Redis away for a moment: the next bundles still go
                logger.exception("stream relay could not send %d bundles", len(batch))
            if not self.closing:  # flushing at the end: no pause
                await asyncio.sleep(max(self.EVERY, clock() - began))

    async def close(self, timeout: float = 10.0) -> None:
        """Send what waits (for at most ``timeout`` seconds), then stop."""
        self.closing = True
        task, self.task = self.task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(self.drained.wait(), timeout)
        except TimeoutError:
            logger.error("stream relay stopped with %d bundles unsent", len(self.waiting))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _is_market(name: str) -> bool:
    return name.startswith("market.")


def _account_parts(event: dict) -> dict:
    """Return the bundle without its market channels' parts."""
    parts = [part for part in event["channels"] if not _is_market(part[0])]
    return {**event, "channels": parts}


def _messages(events: list[dict]) -> int:
    return sum(len(part[2]) for event in events for part in event["channels"])


def _same_hub_run(events: list[dict]) -> list[dict]:
    """Return the first bundles that a hub skips or takes alike (one ``DELIVERED`` token)."""
    token = events[0].get(DELIVERED)
    return list(itertools.takewhile(lambda e: e.get(DELIVERED) == token, events))


def _merged(events: list[dict]) -> dict:
    """Return bundles as one: their parts in order (numbers per channel stay increasing)."""
    if len(events) == 1:
        return events[0]
    parts = [part for event in events for part in event["channels"]]
    return {**events[-1], "channels": parts}


def bundle_parts(event: dict) -> list[tuple[str, dict, list[dict]]]:
    """Return a bundle's parts: (channel, its number as an event, its messages as events)."""
    origin, parts = event.get("origin"), []
    for channel, pseq, messages in event.get("channels", ()):
        base = {"type": EVENT_TYPE, "channel": channel}
        parts.append((channel, {"origin": origin, "pseq": pseq},
                      [{**base, **message} for message in messages]))  # fmt: skip
    return parts


def newest_per_kind(messages: list[dict]) -> tuple[list[dict], int]:
    """Keep the newest message of each kind (in their order); return them and how many went."""
    newest = {message["kind"]: i for i, message in enumerate(messages)}
    kept = [messages[i] for i in sorted(newest.values())]
    return kept, len(messages) - len(kept)


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
        self.bundled = False  # a member of ``BUNDLES`` (while any channel has subscribers)
        self.token = uuid.uuid4().hex  # told in bundles handed to this hub directly

    @classmethod
    def of(cls, layer) -> StreamHub:
        """Return the hub of ``layer`` on the running loop, created on first use."""
        hub = getattr(layer, "_stream_hub", None)
        if hub is None or hub.loop is not asyncio.get_running_loop():
            hub = cls(layer)
            layer._stream_hub = hub
        return hub

    @staticmethod
    def local(layer) -> StreamHub | None:
        """Return the hub of ``layer`` on the running loop if it has subscribers, else None."""
        hub = getattr(layer, "_stream_hub", None)
        if hub is None or not hub.members or hub.loop is not asyncio.get_running_loop():
            return None
        return hub

    async def join(self, name: str, subscriber: Subscriber) -> None:
        """Add ``subscriber`` to channel ``name``; return once the layer delivers it here."""
        if self.channel_name is None:
            self.channel_name = await self.layer.new_channel(prefix=HUB_PREFIX)
        self._start()
        if not self.bundled:
            self.bundled = True
            try:
                await self.layer.group_add(BUNDLES, self.channel_name)
            except BaseException:
                self.bundled = False
                raise
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
            self.bundled = False
            with contextlib.suppress(Exception):
                await self.layer.group_discard(BUNDLES, self.channel_name)

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
            if message.get(DELIVERED) == self.token:
                continue  # this hub had it from its publisher on this loop already
            try:
                await self.deliver(message)
            except Exception:  # one bad message must not end every client's stream
                logger.exception("stream hub could not deliver a message")

    async def _rejoin(self) -> None:
        """Refresh every membership before the layer's ``group_expiry`` can end it."""
        while True:
            await asyncio.sleep(REJOIN_EVERY)
            for name in [*self.members, *([BUNDLES] if self.bundled else [])]:
                try:
                    await self.layer.group_add(name, self.channel_name)
                except Exception:  # Redis away for a moment: the next round tries again
                    logger.exception("stream hub could not re-join %s", name)

    async def deliver(self, event: dict) -> None:
        """Encode each published message once and offer it to every local subscriber.

        In slices of at most ``SLICE_SECONDS`` with a turn of the loop between them: in the
        embedded layout the engine shares this loop, and a due tick then waits for one slice,
        not for the whole fan-out.
        """
        kind = event.get("type")
        if kind == EVENT_TYPE:
            parts = [(event.get("channel", ""), event, [event])]
        elif kind == BUNDLE_TYPE:
            parts = bundle_parts(event)
        else:
            return
        behind = kind == BUNDLE_TYPE and wall_clock() - event.get("sent", 0.0) > BEHIND_SECONDS
        direct = event.get(DELIVERED) == self.token
        offered, began = 0, clock()
        for name, numbered, messages in parts:
            members = self.members.get(name)
            if not members:
                continue
            lost = self._lost(name, numbered, direct)
            channel = self.parsed[name]
            if behind and channel.is_market:
                messages, dropped = newest_per_kind(messages)
                lost += dropped
            budget = SLICE_SECONDS if channel.is_market else ACCOUNT_SLICE_SECONDS
            for message in messages:
                frame = frame_encode(name, message["kind"], message["ts"], message["data"])
                for subscriber in list(members):
                    if offered % SLICE == 0 and offered and clock() - began >= budget:
                        await asyncio.sleep(0)
                        began = clock()
                    offered += 1
                    subscriber.offer(channel, message, frame, lost)
                lost = 0

    def _lost(self, name: str, event: dict, direct: bool = False) -> int:
        """Return how many messages of ``name`` the layer dropped just before this one.

        Publishers number their messages per channel (``origin``, ``pseq``); a jump means the
        layer dropped some (this process's channel was full). A bundle handed over directly
        (``direct``) cannot have lost anything on the way, and the ones it jumps over went
        through the layer, sent while this hub had no subscribers (no token): they may still be
        on their way and come late. A late one (at or below the highest seen) is let through,
        never counted as a jump backwards: the next direct bundle then closed every client
        with 4429 ("messages of orders lost upstream") in the soak, as clients subscribed.
        """
        origin, pseq = event.get("origin"), event.get("pseq")
        if origin is None or not isinstance(pseq, int):
            return 0
        key = (origin, name)
        last = self.upstream.get(key)
        if last is not None and pseq <= last:
            return 0
        self.upstream[key] = pseq
        if direct or last is None:
            return 0
        return pseq - last - 1
