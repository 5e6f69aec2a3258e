"""Publishing to the WebSocket stream, and one-time tickets that authenticate a stream.

Services and engines call ``publish(channel, kind, data)`` (sync, sent after the transaction
commits) or ``apublish(layer, channel, kind, data)`` (from an event loop); never a socket. The
message goes to the channel layer group of that channel, so every web process's consumers get it
(the in-memory layer in one process, Redis when ``REDIS_URL`` is set).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import secrets
import threading
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.cache import cache
from django.db import transaction

from monitoring.engine.stream import channel_parse
from monitoring.services import to_jsonable

EVENT_TYPE = "stream.message"  # consumers' ``stream_message`` handler
# Each publishing process numbers its messages per channel (``origin``, ``pseq``), so a consumer
# notices a message the channel layer dropped (a full channel) and can say so.
ORIGIN = uuid.uuid4().hex[:12]
_PSEQ: dict[str, itertools.count] = {}
TICKET_TTL = 30  # seconds a ticket may wait before it is used
_TICKET_PREFIX = "ws-ticket:"


def now_iso() -> str:
    """Return the current UTC time as ISO-8601 with microseconds."""
    return datetime.now(UTC).isoformat()


def stream_jsonable(value: Any) -> Any:
    """Return ``value`` JSON-safe with every Decimal as a plain string (never ``0E-10``)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {str(k): stream_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stream_jsonable(v) for v in value]
    return to_jsonable(value)


def group_of(channel: str) -> str:
    """Return the channel-layer group of a stream channel (its name, validated)."""
    return channel_parse(channel).name


def stream_event(channel: str, kind: str, data: dict, ts: str | None = None) -> dict:
    """Return the channel-layer event that carries one stream message (JSON-safe data)."""
    return {
        "type": EVENT_TYPE,
        "channel": channel,
        "kind": kind,
        "ts": ts or now_iso(),
        "data": stream_jsonable(data),
        "origin": ORIGIN,
        "pseq": next(_PSEQ.setdefault(channel, itertools.count(1))),
    }


def publish(channel: str, kind: str, data: dict) -> None:
    """Send ``data`` to the subscribers of ``channel`` once the current transaction commits."""
    layer = get_channel_layer()
    if layer is None:
        return
    group = group_of(channel)
    data = stream_jsonable(data)  # now: the caller may change its objects after this returns
    # Numbered when sent, after the commit, so the numbers follow the order of the sends.
    transaction.on_commit(lambda: _send_now(layer, group, channel, kind, data))


def _send_now(layer, group: str, channel: str, kind: str, data: dict) -> None:
    """Send one message from sync code, cheaply: a CLI backtest publishes to nobody."""
    if isinstance(layer, InMemoryChannelLayer):
        # This process's layer reaches only this process's consumers (the web process,
        # ``runtrader --serve``): with no member in the group the message would go nowhere, so
        # it is neither numbered nor sent (starting an event loop for it cost ~0.5 ms).
        if not layer.groups.get(group):
            return
        # async_to_sync runs it on the server's loop when called from one of its threads.
        async_to_sync(layer.group_send)(group, stream_event(channel, kind, data))
        return
    _SENDER.run(layer.group_send(group, stream_event(channel, kind, data)))


class _LoopThread:
    """One event loop in a daemon thread per process, reused by every sync publish.

    ``async_to_sync`` started a loop in a new thread per message, and channels_redis opens a
    Redis connection per loop: ~1.3 ms of CPU a message. Here the loop, and its connection,
    stay. Each call waits for its send, so messages leave in the order of the calls and an error
    reaches the caller as before. A forked child (a django-q2 worker) starts its own.
    """

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Drop the loop (in a forked child: its thread stayed in the parent)."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="rrr-publish", daemon=True
                ).start()
            return self._loop

    def run(self, coro: Coroutine) -> Any:
        """Run ``coro`` on the loop and return its result (raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self._running_loop()).result()


_SENDER = _LoopThread()


def _after_fork_in_child() -> None:
    # A forked process is another publisher: its own origin and numbers (the parent's would
    # interleave with its own and look like lost messages), and its own loop thread.
    global ORIGIN
    ORIGIN = uuid.uuid4().hex[:12]
    _PSEQ.clear()
    _SENDER.forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


async def apublish(layer, channel: str, kind: str, data: dict, ts: str | None = None) -> None:
    """Send ``data`` to the subscribers of ``channel`` now, from an event loop."""
    await layer.group_send(group_of(channel), stream_event(channel, kind, data, ts))


# --------------------------------------------------------------------------- tickets


def _ticket_key(ticket: str) -> str:
    return _TICKET_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def ticket_issue(*, user) -> str:
    """Return a one-time ticket that authenticates ``user``'s next stream for ``TICKET_TTL`` s.

    Only its hash is stored, in the cache (Redis when scaled, so any web process redeems it).
    """
    ticket = secrets.token_urlsafe(32)
    cache.set(_ticket_key(ticket), user.pk, timeout=TICKET_TTL)
    return ticket


def ticket_redeem(ticket: str) -> int | None:
    """Return the user id of ``ticket`` and spend it; None when unknown, expired or spent."""
    if not ticket or len(ticket) > 200:
        return None
    key = _ticket_key(ticket)
    user_id = cache.get(key)
    # delete() says whether this call removed it: of two concurrent redeemers only one wins.
    if user_id is None or not cache.delete(key):
        return None
    return int(user_id)
