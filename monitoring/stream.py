"""The WebSocket stream consumer: ``/ws/v1/stream`` (the protocol is in docs/websocket.md).

One connection; the client subscribes to channels and gets, per channel, a snapshot (seq 1) and
then live messages in a versioned envelope. Authentication: a same-origin session cookie, a DRF
token or JWT access token (``?token=``), or a one-time ``?ticket=`` (``rrr_site.ws_auth``);
without one the connection is closed with 4401. Every channel needs the viewer role; account
channels carry only the accounts granted to the user (re-read every ``GRANTS_TTL`` seconds).

Nothing the engine publishes ever waits for a client: the process's ``StreamHub`` (one
channel-layer subscription per channel per process) encodes each message once and offers it to
this connection, which puts it into its ``Outbox``; a sender task writes that to the socket. A
client that reads slowly backs up only its own outbox: market data conflates, and when undroppable
messages overflow the connection is closed with 4429 so the client reconnects and starts again
from snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from functools import partial

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from monitoring.engine.stream import (
    PROTOCOL_VERSION,
    Channel,
    ChannelError,
    Frame,
    Outbox,
    OutboxOverflow,
    channel_parse,
)
from monitoring.realtime import now_iso
from monitoring.stream_hub import StreamHub
from rrr_site.ws_auth import REFUSED_ORIGIN

logger = logging.getLogger(__name__)

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
TOO_SLOW = 4429  # undroppable messages overflowed this connection's outbox
MAX_CHANNELS = 64
MAX_MESSAGE = 16_384  # bytes of one client message
MAX_ID = 128  # characters of a request's string id (an integer id is at most 2**53 - 1 either way)
RELAY_EVERY = 0.5  # seconds between reads of a watched backtest's stored progress (see below)
FINISHED = frozenset({"completed", "failed", "cancelled"})
SYSTEM_ACCOUNT_KINDS = frozenset({"heartbeat", "feed"})  # system messages of one account


@database_sync_to_async
def _grants(user) -> tuple[int, frozenset[str] | None]:
    """Return the user's role and the names of the accounts they may see (None: every one)."""
    from django.contrib.auth import get_user_model

    from rrr_site.api.roles import role_of
    from trading.models import Account

    # A fresh object: role_of caches the role on the user it is given.
    user = get_user_model().objects.filter(pk=user.pk).first()
    if user is None:  # deleted while connected: nothing any more
        return 0, frozenset()
    role = int(role_of(user))
    if user.is_active and (user.is_staff or user.is_superuser):
        return role, None
    return role, frozenset(Account.objects.visible_to(user).values_list("name", flat=True))


def _account_scoped(channel: Channel, event: dict) -> bool:
    """Say whether ``event`` belongs to one account (``data.account``): every message of an
    account channel, and the system channel's heartbeats and feed notices (one engine's counts);
    models are everyone's."""
    return channel.is_account or (
        channel.family == "system" and event.get("kind") in SYSTEM_ACCOUNT_KINDS
    )


@database_sync_to_async
def _refusal(channel: Channel) -> str | None:
    """Return why ``channel`` cannot be watched (an unknown symbol or run), or None."""
    from monitoring.stream_selectors import backtest_exists, symbol_known

    if channel.family == "market" and not symbol_known(channel.key):
        return "unknown symbol"
    if channel.family == "backtests" and not backtest_exists(int(channel.key)):
        return "unknown backtest"
    return None


@database_sync_to_async
def _snapshot(channel: Channel, accounts: frozenset[str] | None) -> dict:
    from monitoring.stream_selectors import stream_snapshot
    from trading.models import Account

    visible = Account.objects.all()
    if accounts is not None:
        visible = visible.filter(name__in=sorted(accounts))
    return stream_snapshot(channel, visible, every_account=accounts is None)


@database_sync_to_async
def _stored_progress(run_id: int) -> dict:
    from monitoring.stream_selectors import backtest_snapshot

    return backtest_snapshot(run_id=run_id)


def _echoable(request_id) -> bool:
    """Say whether a client's ``id`` may be echoed: absent, a short string or a safe integer."""
    if request_id is None:
        return True
    if request_id.__class__ is str:
        return len(request_id) <= MAX_ID
    return request_id.__class__ is int and -(2**53) < request_id < 2**53


def _layer_is_local(layer) -> bool:
    """Say whether ``layer`` reaches only this process (the embedded in-memory layer)."""
    from channels.layers import InMemoryChannelLayer

    return isinstance(layer, InMemoryChannelLayer)


class _Resumed:
    """Awaitable finishing a coroutine that suspended outside any task (``_write_now``).

    The coroutine gave up ``waiting`` (a future) when it suspended; awaiting this hands that to
    the awaiting task and resumes the coroutine with what the task sends or throws, as if the
    task had run it from the start.
    """

    __slots__ = ("coro", "waiting")

    def __init__(self, coro, waiting) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self):
        waiting = self.waiting
        while True:
            try:
                result = yield waiting
            except BaseException as exc:  # cancellation included: the coroutine sees it
                step = partial(self.coro.throw, exc)
            else:
                step = partial(self.coro.send, result)
            try:
                waiting = step()
            except StopIteration as stop:
                return stop.value


class StreamConsumer(AsyncWebsocketConsumer):
    """Authenticate, then serve subscribe/unsubscribe/ping and forward channel messages."""

    GRANTS_TTL = 30.0
    MARKET_BACKLOG = 256
    RELIABLE_LIMIT = 2000
    # No channel of its own on the layer: the process's StreamHub receives for every connection.
    channel_layer_alias = "stream: the hub receives"

    async def connect(self) -> None:
        """Accept; close with 4401 at once unless the handshake authenticated a user."""
        self.layer = get_channel_layer()
        self.hub = StreamHub.of(self.layer) if self.layer is not None else None
        self.channels_on: dict[str, Channel] = {}
        self.pending: dict[str, list] = {}  # channel -> messages held while its snapshot is read
        self.held: list | None = None  # account messages held while grants are re-read
        self.outbox = Outbox(self.MARKET_BACKLOG, self.RELIABLE_LIMIT)
        self.ready = asyncio.Event()
        self.sender: asyncio.Task | None = None
        self.idle = False  # the sender waits on an empty outbox: a message may be written at once
        self.inflight: _Resumed | None = None  # a send begun at once that the sender finishes
        self.closing = False
        self.relays: dict[str, asyncio.Task] = {}
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            reason = "authentication required"
            if self.scope.get("auth_refused") == REFUSED_ORIGIN:
                reason = "session cookie from a foreign or missing Origin"
            self.closing = True
            await self.close(code=UNAUTHENTICATED, reason=reason)
            return
        await self._read_grants()
        self.sender = asyncio.create_task(self._send_loop(), name="ws-stream-sender")

    async def disconnect(self, code: int) -> None:
        """Stop the sender and leave every channel."""
        self.closing = True
        if self.sender is not None:
            self.sender.cancel()
        for relay in getattr(self, "relays", {}).values():
            relay.cancel()
        for name in list(getattr(self, "channels_on", {})) + list(getattr(self, "pending", {})):
            await self.hub.leave(name, self)

    # ------------------------------------------------------------------ client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Handle one client message: subscribe, unsubscribe or ping."""
        if self.closing or self.sender is None:
            return
        request = self._parse(text_data)
        if request is None:
            return
        op, request_id = request.get("op"), request.get("id")
        if not _echoable(request_id):  # echoed as is: NaN or 1e999 would make invalid JSON
            self._error(None, f"id must be a string of at most {MAX_ID} characters or an integer")
            return
        if op == "ping":
            self._reply({"v": PROTOCOL_VERSION, "type": "pong", "id": request_id, "ts": now_iso()})
            return
        names = request.get("channels")
        if op not in {"subscribe", "unsubscribe"}:
            self._error(request_id, "op must be subscribe, unsubscribe or ping")
            return
        if not isinstance(names, list) or not names or len(names) > MAX_CHANNELS:
            self._error(request_id, f"channels must be a list of 1 to {MAX_CHANNELS} names")
            return
        if op == "subscribe":
            await self._subscribe(names, request_id)
        else:
            await self._unsubscribe(names, request_id)

    def _parse(self, text: str | None) -> dict | None:
        if text is None or len(text) > MAX_MESSAGE:
            self._error(None, f"send JSON text messages of at most {MAX_MESSAGE} bytes")
            return None
        try:
            request = json.loads(text)
        except ValueError:
            self._error(None, "not JSON")
            return None
        if not isinstance(request, dict):
            self._error(None, "a message is a JSON object")
            return None
        return request

    async def _subscribe(self, names: list, request_id) -> None:
        accepted, refused, fresh = [], {}, []
        for name in dict.fromkeys(n for n in names if isinstance(n, str)):
            reason = await self._why_not(name)
            if reason:
                refused[name] = reason
                continue
            accepted.append(name)
            if name not in self.channels_on:
                fresh.append(channel_parse(name))
        for name in names:
            if not isinstance(name, str):
                refused[str(name)] = "a channel name is a string"
        if len(self.channels_on) + len(fresh) > MAX_CHANNELS:
            refused.update({c.name: "too many channels" for c in fresh})
            accepted = [n for n in accepted if n not in refused]
            fresh = []
        self._reply(self._ack(request_id, accepted, refused))
        for channel in fresh:
            await self._start(channel)

    async def _start(self, channel: Channel) -> None:
        """Join ``channel``, then send its snapshot and, after it, what was published since.

        Joined first, so whatever is published after the snapshot's read reaches us; held until
        the snapshot is queued, so it follows the snapshot.
        """
        self.pending[channel.name] = held = []
        await self.hub.join(channel.name, self)
        self.outbox.reset(channel.name)
        data = await _snapshot(channel, self.accounts)
        if self.pending.get(channel.name) is not held or self.closing:
            return  # unsubscribed or closed while the snapshot was read
        del self.pending[channel.name]
        self.channels_on[channel.name] = channel
        self._put(channel, "snapshot", now_iso(), data)
        for event, frame, lost in held:
            self.offer(channel, event, frame, lost)
        if channel.family == "backtests" and _layer_is_local(self.layer):
            self.relays[channel.name] = asyncio.create_task(self._relay(channel, data))

    async def _relay(self, channel: Channel, last: dict) -> None:
        """Relay a backtest's stored progress while it runs, when the layer is this process's.

        A run executes in a task worker, another process: with Redis its progress messages
        reach every web process, but the embedded in-memory layer cannot carry them here. So in
        that case the connection reads the run's stored progress (written at every progress mark)
        every ``RELAY_EVERY`` s and sends a ``progress`` message when it changed, until the run
        finishes, the channel is left, or the run's own messages arrive (it runs in this process).
        """
        seen = (last.get("done"), last.get("status"))
        while seen[1] not in FINISHED and not self.closing:
            await asyncio.sleep(RELAY_EVERY)
            data = await _stored_progress(int(channel.key))
            if self.relays.get(channel.name) is not asyncio.current_task():
                return  # left, or published to here (``offer`` ended the relay)
            now = (data["done"], data["status"])
            if now != seen:
                seen = now
                self._put(channel, "progress", now_iso(), data)

    async def _why_not(self, name: str) -> str | None:
        try:
            channel = channel_parse(name)
        except ChannelError as exc:
            return str(exc)
        if self.role < 1:
            return "needs the viewer role"
        if channel.is_account and self.accounts is not None and not self.accounts:
            return "no account granted"
        if self.hub is None:
            return "no channel layer configured"
        return await _refusal(channel)

    async def _unsubscribe(self, names: list, request_id) -> None:
        accepted, refused = [], {}
        for name in names:
            if isinstance(name, str) and (name in self.channels_on or name in self.pending):
                self.channels_on.pop(name, None)
                self.pending.pop(name, None)
                relay = self.relays.pop(name, None)
                if relay is not None:
                    relay.cancel()
                self.outbox.reset(name)
                await self.hub.leave(name, self)
                accepted.append(name)
            else:
                refused[str(name)] = "not subscribed"
        self._reply(self._ack(request_id, accepted, refused))

    @staticmethod
    def _ack(request_id, accepted: list, refused: dict) -> dict:
        return {
            "v": PROTOCOL_VERSION,
            "type": "ack",
            "id": request_id,
            "channels": accepted,
            "refused": refused,
        }

    def _error(self, request_id, message: str) -> None:
        self._reply({"v": PROTOCOL_VERSION, "type": "error", "id": request_id, "error": message})

    # ------------------------------------------------------------------ server -> client

    def offer(self, channel: Channel, event: dict, frame: Frame, lost: int = 0) -> None:
        """Queue a published message if this client watches the channel and account.

        Called by the hub for every subscriber, so it never waits: a message that arrives while
        the channel's snapshot (or the user's grants) is being read is held until it is done.
        ``lost``: messages of the channel the layer dropped just before this one; lost market
        data is told like conflation (its ``seq`` numbers skipped), a lost undroppable message
        closes the connection so the client resyncs from snapshots.
        """
        if self.closing:
            return
        held = self.pending.get(channel.name)
        scoped = _account_scoped(channel, event)
        if held is None and scoped:
            held = self.held
        if held is not None:
            held.append((event, frame, lost))
            return
        if channel.name not in self.channels_on:
            return
        if lost:
            if not channel.is_market:
                self._overflow(f"{lost} messages of {channel.name} lost upstream")
                return
            self.outbox.lost(channel.name, lost, event["ts"])
        if scoped and not self._may_see(channel, event, frame):
            return
        if channel.name in self.relays:  # the run publishes to this process: no relay needed
            self.relays.pop(channel.name).cancel()
        self._put(channel, event["kind"], event["ts"], event["data"], frame)

    def _put(
        self, channel: Channel, kind: str, ts: str, data: dict, frame: Frame | None = None
    ) -> None:
        if frame is not None and self.idle and not self.closing and not len(self.outbox):
            # Nothing waits and the sender idles: straight to the socket, past the outbox.
            self._send_now(frame.text(self.outbox.next_seq(channel.name)))
            return
        try:
            self.outbox.put(channel.name, kind, ts, data, market=channel.is_market, frame=frame)
        except OutboxOverflow as exc:
            self._overflow(str(exc))
        self._wake()

    def _reply(self, message: dict) -> None:
        try:
            self.outbox.put_reply(message)
        except OutboxOverflow as exc:
            self._overflow(str(exc))
        self._wake()

    def _wake(self) -> None:
        """Get the outbox written: at once when the sender idles, else by the sender task."""
        if self.idle and not self.closing:
            self._write_now()
        else:
            self.ready.set()

    def _write_now(self) -> None:
        """Write what waits now, in the caller's turn, instead of waking the sender task.

        With 500 clients, waking 500 sender tasks per message was a fifth of the fan-out's CPU.
        Only while the sender idles on an empty outbox, so the order on the wire holds.
        """
        while self.idle and (text := self.outbox.pop_text()) is not None:
            self._send_now(text)

    def _send_now(self, text: str) -> None:
        """Send ``text`` now; if the transport pushes back, the sender task finishes the send.

        A send runs to its end without suspending while the transport takes data; when it does
        suspend, the sender takes it over (``inflight``) and goes on with the outbox after it.
        """
        sending = self.base_send({"type": "websocket.send", "text": text})
        try:
            waiting = sending.send(None)
        except StopIteration:
            return
        except Exception:  # the client went away: the disconnect handler cleans up
            self.closing = True
            return
        self.inflight = _Resumed(sending, waiting)
        self.idle = False
        self.ready.set()

    def _overflow(self, detail: str) -> None:
        """Close a client too slow for undroppable messages; it resubscribes for snapshots."""
        if self.closing:
            return
        self.closing = True
        logger.warning("closing a slow WebSocket client (4429): %s", detail)
        asyncio.get_running_loop().create_task(self._close_slow())

    async def _close_slow(self) -> None:
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender
        await self.close(code=TOO_SLOW, reason="too slow: reconnect and resubscribe")

    async def _send_loop(self) -> None:
        """Write queued messages to the socket, one at a time (a slow socket only waits here)."""
        send, pop = self.base_send, self.outbox.pop_text
        while True:
            try:
                if self.inflight is not None:
                    inflight, self.inflight = self.inflight, None
                    await inflight
                text = pop()
                if text is None:
                    self.ready.clear()
                    self.idle = True
                    await self.ready.wait()
                    self.idle = False
                    continue
                await send({"type": "websocket.send", "text": text})
            except Exception:  # the client went away: the disconnect handler cleans up
                self.idle = False
                return

    # ------------------------------------------------------------------ account scope

    async def _read_grants(self) -> None:
        self.role, self.accounts = await _grants(self.scope["user"])
        self.grants_read_at = time.monotonic()

    def _may_see(self, channel: Channel, event: dict, frame: Frame) -> bool:
        """Say whether an account message belongs to an account this user may see.

        Past ``GRANTS_TTL`` the grants are re-read first: the message and those after it on
        account channels wait for that (``self.held``), so a revoked grant shows nothing more.
        """
        if time.monotonic() - self.grants_read_at >= self.GRANTS_TTL:
            self.held = [(event, frame, 0)]
            asyncio.get_running_loop().create_task(self._regrant())
            return False
        return self._granted(event)

    def _granted(self, event: dict) -> bool:
        data = event.get("data")
        account = data.get("account") if isinstance(data, dict) else None
        # A message that names no account is shown only to users who see every account.
        return self.accounts is None or account in self.accounts

    async def _regrant(self) -> None:
        """Re-read the grants, then queue the account messages held meanwhile that they allow."""
        try:
            await self._read_grants()
        finally:
            held, self.held = self.held or [], None
        if self.role < 1 or (self.accounts == frozenset() and self._watches_an_account()):
            self._revoked()
            return
        for event, frame, lost in held:
            channel = self.channels_on.get(event.get("channel", ""))
            if channel is None or self.closing:
                continue
            if lost:
                self._overflow(f"{lost} messages of {channel.name} lost upstream")
            elif self._granted(event):
                self._put(channel, event["kind"], event["ts"], event["data"], frame)

    def _watches_an_account(self) -> bool:
        """Say whether an account channel is subscribed (the system channel is not one: a
        viewer with no account still sees the models there)."""
        return any(channel.is_account for channel in self.channels_on.values())

    def _revoked(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(
                self.close(code=FORBIDDEN, reason="grant or role revoked")
            )
