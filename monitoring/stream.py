"""The WebSocket stream consumer: ``/ws/v1/stream`` (the protocol is in docs/websocket.md).

One connection; the client subscribes to channels and gets, per channel, a snapshot (seq 1) and
then live messages in a versioned envelope. Authentication: a same-origin session cookie, a DRF
token or JWT access token (``?token=``), or a one-time ``?ticket=`` (``rrr_site.ws_auth``);
without one the connection is closed with 4401. Every channel needs the viewer role; account
channels carry only the accounts granted to the user (re-read every ``GRANTS_TTL`` seconds).

Nothing the engine publishes ever waits for a client: channel-layer events are put into this
connection's ``Outbox`` and a sender task writes them to the socket. A client that reads slowly
backs up only its own outbox: market data conflates, and when undroppable messages overflow the
connection is closed with 4429 so the client reconnects and starts again from snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from monitoring.engine.stream import (
    PROTOCOL_VERSION,
    Channel,
    ChannelError,
    Outbox,
    OutboxOverflow,
    channel_parse,
)
from monitoring.realtime import EVENT_TYPE, now_iso
from rrr_site.ws_auth import REFUSED_ORIGIN

logger = logging.getLogger(__name__)

UNAUTHENTICATED = 4401
FORBIDDEN = 4403
TOO_SLOW = 4429  # undroppable messages overflowed this connection's outbox
MAX_CHANNELS = 64
MAX_MESSAGE = 16_384  # bytes of one client message
RELAY_EVERY = 0.5  # seconds between reads of a watched backtest's stored progress (see below)
FINISHED = frozenset({"completed", "failed", "cancelled"})


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
    return stream_snapshot(channel, visible)


@database_sync_to_async
def _stored_progress(run_id: int) -> dict:
    from monitoring.stream_selectors import backtest_snapshot

    return backtest_snapshot(run_id=run_id)


def _layer_is_local(layer) -> bool:
    """Say whether ``layer`` reaches only this process (the embedded in-memory layer)."""
    from channels.layers import InMemoryChannelLayer

    return isinstance(layer, InMemoryChannelLayer)


class StreamConsumer(AsyncWebsocketConsumer):
    """Authenticate, then serve subscribe/unsubscribe/ping and forward channel messages."""

    GRANTS_TTL = 30.0
    MARKET_BACKLOG = 256
    RELIABLE_LIMIT = 2000

    async def connect(self) -> None:
        """Accept; close with 4401 at once unless the handshake authenticated a user."""
        self.channels_on: dict[str, Channel] = {}
        self.upstream: dict[tuple[str, str], int] = {}  # (origin, channel) -> last pseq seen
        self.outbox = Outbox(self.MARKET_BACKLOG, self.RELIABLE_LIMIT)
        self.ready = asyncio.Event()
        self.sender: asyncio.Task | None = None
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
        """Stop the sender and leave every group."""
        self.closing = True
        if self.sender is not None:
            self.sender.cancel()
        for relay in getattr(self, "relays", {}).values():
            relay.cancel()
        for name in list(getattr(self, "channels_on", {})):
            await self.channel_layer.group_discard(name, self.channel_name)

    # ------------------------------------------------------------------ client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Handle one client message: subscribe, unsubscribe or ping."""
        if self.closing or self.sender is None:
            return
        request = self._parse(text_data)
        if request is None:
            return
        op, request_id = request.get("op"), request.get("id")
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
            # Join first: whatever is published after the snapshot's read reaches us (in order,
            # since this connection handles one event at a time).
            await self.channel_layer.group_add(channel.name, self.channel_name)
            self.outbox.reset(channel.name)
            self._forget_upstream(channel.name)
            data = await _snapshot(channel, self.accounts)
            self.channels_on[channel.name] = channel
            self._put(channel, "snapshot", now_iso(), data)
            if channel.family == "backtests" and _layer_is_local(self.channel_layer):
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
                return  # left, or published to here (``stream_message`` ended the relay)
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
        return await _refusal(channel)

    async def _unsubscribe(self, names: list, request_id) -> None:
        accepted, refused = [], {}
        for name in names:
            if isinstance(name, str) and name in self.channels_on:
                del self.channels_on[name]
                relay = self.relays.pop(name, None)
                if relay is not None:
                    relay.cancel()
                self.outbox.reset(name)
                self._forget_upstream(name)
                await self.channel_layer.group_discard(name, self.channel_name)
                accepted.append(name)
            else:
                refused[str(name)] = "not subscribed"
        self._reply(self._ack(request_id, accepted, refused))

    def _forget_upstream(self, name: str) -> None:
        for key in [k for k in self.upstream if k[1] == name]:
            del self.upstream[key]

    @staticmethod
    def _ack(request_id, accepted: list, refused: dict) -> dict:
        return {"v": PROTOCOL_VERSION, "type": "ack", "id": request_id, "channels": accepted,
                "refused": refused}

    def _error(self, request_id, message: str) -> None:
        self._reply({"v": PROTOCOL_VERSION, "type": "error", "id": request_id, "error": message})

    # ------------------------------------------------------------------ server -> client

    async def dispatch(self, message: dict) -> None:
        """Handle published messages inline; everything else as Channels does.

        Channels closes stale database connections before every handler, a hop to the one
        database thread that all connections share; a published message touches no database
        (a grants re-read goes through ``database_sync_to_async``, which does its own), so the
        hop would only serialise every client's fan-out behind that thread.
        """
        if message.get("type") == EVENT_TYPE:
            await self.stream_message(message)
            return
        await super().dispatch(message)

    async def stream_message(self, event: dict) -> None:
        """Queue a published message for this client if it watches the channel and account."""
        channel = self.channels_on.get(event.get("channel", ""))
        if channel is None or self.closing:
            return
        self._check_upstream(channel, event)
        if channel.is_account and not await self._may_see(event.get("data")):
            return
        if channel.name in self.relays:  # the run publishes to this process: no relay needed
            self.relays.pop(channel.name).cancel()
        self._put(channel, event["kind"], event["ts"], event["data"])

    def _check_upstream(self, channel: Channel, event: dict) -> None:
        """Notice messages the channel layer dropped before they reached this connection.

        Publishers number their messages per channel; a jump means the layer dropped some (its
        queue for this connection was full). Lost market data is told like conflation; a lost
        undroppable message closes the connection so the client resyncs from snapshots.
        """
        origin, pseq = event.get("origin"), event.get("pseq")
        if origin is None or not isinstance(pseq, int):
            return
        key = (origin, channel.name)
        last, self.upstream[key] = self.upstream.get(key), pseq
        if last is None or pseq <= last + 1:
            return
        if channel.is_market:
            self.outbox.lost(channel.name, pseq - last - 1, event["ts"])
        else:
            self._overflow(f"{pseq - last - 1} messages of {channel.name} lost upstream")

    def _put(self, channel: Channel, kind: str, ts: str, data: dict) -> None:
        try:
            self.outbox.put(channel.name, kind, ts, data, market=channel.is_market)
        except OutboxOverflow as exc:
            self._overflow(str(exc))
        self.ready.set()

    def _reply(self, message: dict) -> None:
        try:
            self.outbox.put_reply(message)
        except OutboxOverflow as exc:
            self._overflow(str(exc))
        self.ready.set()

    def _overflow(self, detail: str) -> None:
        """Close a client too slow for undroppable messages; it resubscribes for snapshots."""
        if self.closing:
            return
        self.closing = True
        logger.warning("closing a slow WebSocket client", extra={"detail": detail})
        asyncio.get_running_loop().create_task(self._close_slow())

    async def _close_slow(self) -> None:
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender
        await self.close(code=TOO_SLOW, reason="too slow: reconnect and resubscribe")

    async def _send_loop(self) -> None:
        """Write queued messages to the socket, one at a time (a slow socket only waits here)."""
        while True:
            message = self.outbox.pop()
            if message is None:
                self.ready.clear()
                await self.ready.wait()
                continue
            try:
                await self.send(text_data=json.dumps(message, separators=(",", ":")))
            except Exception:  # the client went away: the disconnect handler cleans up
                return

    # ------------------------------------------------------------------ account scope

    async def _read_grants(self) -> None:
        self.role, self.accounts = await _grants(self.scope["user"])
        self.grants_read_at = time.monotonic()

    async def _may_see(self, data: object) -> bool:
        """Say whether an account message belongs to an account this user may see."""
        if time.monotonic() - self.grants_read_at >= self.GRANTS_TTL:
            await self._read_grants()
            if self.role < 1 or (self.accounts is not None and not self.accounts):
                self._revoked()
                return False
        account = data.get("account") if isinstance(data, dict) else None
        # A message that names no account is shown only to users who see every account.
        return self.accounts is None or account in self.accounts

    def _revoked(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(
                self.close(code=FORBIDDEN, reason="grant or role revoked")
            )
