"""Publishing to the WebSocket stream, and one-time tickets that authenticate a stream.

Services and engines call ``publish(channel, kind, data)`` (sync, sent after the transaction
commits) or ``apublish(layer, channel, kind, data)`` (from an event loop); never a socket. The
message goes to the channel layer group of that channel, so every web process's consumers get it
(the in-memory layer in one process, Redis when ``REDIS_URL`` is set).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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
    transaction.on_commit(
        lambda: async_to_sync(layer.group_send)(group, stream_event(channel, kind, data))
    )


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
