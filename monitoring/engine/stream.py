"""The pure parts of the WebSocket stream protocol (``/ws/v1/stream``, docs/websocket.md).

Channel names, the versioned envelope with per-channel sequence numbers, and ``Outbox``: the
bounded per-connection queue between the channel layer and a client's socket. A slow client
backs up only its own outbox: market messages then conflate to the latest per channel and kind
(the client is told how many were dropped, and sees the gap in ``seq``); orders, fills,
portfolio, risk, system and backtest messages are never dropped, and when too many of them pile
up the outbox raises ``OutboxOverflow`` so the connection is closed and the client resubscribes
for a fresh snapshot.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PROTOCOL_VERSION = 1
MARKET = "market"
BACKTESTS = "backtests"
ACCOUNT_CHANNELS = frozenset({"orders", "fills", "portfolio", "risk"})
PLAIN_CHANNELS = ACCOUNT_CHANNELS | {"system"}
SYMBOL = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}")
RUN_ID = re.compile(r"[1-9][0-9]{0,17}")
CONFLATED = "conflated"

# The message kinds each channel family sends after its snapshot.
KINDS: dict[str, frozenset[str]] = {
    MARKET: frozenset({"bar", "trade", "quote", "book", "prediction"}),
    "orders": frozenset({"order"}),
    "fills": frozenset({"fill"}),
    "portfolio": frozenset({"portfolio"}),
    "risk": frozenset({"risk_event", "state"}),
    "system": frozenset({"heartbeat", "feed", "model"}),
    BACKTESTS: frozenset({"progress"}),
}


class ChannelError(ValueError):
    """A channel name the protocol does not know."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel name: its family and, for market/backtests, the symbol or run id."""

    name: str
    family: str
    key: str = ""

    @property
    def is_market(self) -> bool:
        """Say whether this channel carries conflatable market data."""
        return self.family == MARKET

    @property
    def is_account(self) -> bool:
        """Say whether this channel's messages belong to an account (``data.account``)."""
        return self.family in ACCOUNT_CHANNELS


def channel_parse(name: object) -> Channel:
    """Return the ``Channel`` named ``name``; raise ``ChannelError`` saying why it is not one."""
    if not isinstance(name, str):
        raise ChannelError("a channel name is a string")
    if name in PLAIN_CHANNELS:
        return Channel(name, name)
    family, dot, key = name.partition(".")
    if dot and family == MARKET:
        if not SYMBOL.fullmatch(key):
            raise ChannelError("malformed symbol (like BTC-USD)")
        return Channel(name, MARKET, key)
    if dot and family == BACKTESTS:
        if not RUN_ID.fullmatch(key):
            raise ChannelError("malformed backtest id")
        return Channel(name, BACKTESTS, key)
    raise ChannelError("unknown channel")


def envelope(channel: str, kind: str, seq: int, ts: str, data: dict) -> dict:
    """Return the versioned message the server sends on ``channel``."""
    return {"v": PROTOCOL_VERSION, "channel": channel, "type": kind, "seq": seq, "ts": ts,
            "data": data}


@dataclass(frozen=True, slots=True)
class Frame:
    """A message's envelope encoded once for every connection, but for its ``seq``."""

    head: str
    tail: str

    def text(self, seq: int) -> str:
        """Return the envelope's JSON text with this connection's ``seq``."""
        return f"{self.head}{seq}{self.tail}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def frame_encode(channel: str, kind: str, ts: str, data: dict) -> Frame:
    """Encode the envelope of one published message (the same JSON as ``envelope``)."""
    head = f'{{"v":{PROTOCOL_VERSION},"channel":{_json(channel)},"type":{_json(kind)},"seq":'
    return Frame(head, f',"ts":{_json(ts)},"data":{_json(data)}}}')


class OutboxOverflow(Exception):
    """More undroppable messages are waiting than the outbox holds: the client is too slow."""


@dataclass(slots=True)
class _Entry:
    channel: str
    kind: str
    ts: str
    data: dict
    seq: int
    market: bool
    notice: bool = False
    raw: dict | None = None  # a reply outside any channel (ack, pong, error), sent as it is
    frame: Frame | None = None  # the envelope encoded once for every subscriber


@dataclass
class Outbox:
    """A bounded, conflating queue of one connection's outgoing messages.

    ``market_backlog``: once this many messages wait, a new market message replaces the waiting
    one of the same channel and kind (it moves to the back, so ``seq`` stays increasing on the
    wire) and a ``conflated`` message on that channel counts the drop. ``reliable_limit``: more
    waiting non-market messages than this raises ``OutboxOverflow``.
    """

    market_backlog: int = 256
    reliable_limit: int = 2000
    dropped: int = 0  # market messages dropped by conflation over the connection's life
    _entries: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)  # sent first
    _market: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)  # and conflated
    _latest: dict[tuple[str, str], int] = field(default_factory=dict)
    _notices: dict[str, int] = field(default_factory=dict)
    _seqs: dict[str, int] = field(default_factory=dict)
    _slot: int = 0
    _reliable: int = 0

    def __len__(self) -> int:
        return len(self._entries) + len(self._market)

    def next_seq(self, channel: str) -> int:
        """Take the next sequence number of ``channel`` on this connection."""
        seq = self._seqs.get(channel, 0) + 1
        self._seqs[channel] = seq
        return seq

    def reset(self, channel: str) -> None:
        """Forget ``channel``: its waiting messages go, and a resubscription starts at seq 1."""
        for entries in (self._entries, self._market):
            for slot in [s for s, e in entries.items() if e.channel == channel]:
                self._discard(slot)
        self._seqs.pop(channel, None)

    def put(
        self, channel: str, kind: str, ts: str, data: dict, *, market: bool,
        frame: Frame | None = None,
    ) -> None:
        """Queue a message; conflate market data when backed up; raise on reliable overflow.

        ``frame``: the message's envelope already encoded (``frame_encode``), shared by every
        connection that receives it.
        """
        key = (channel, kind)
        if market and len(self) >= self.market_backlog and key in self._latest:
            self._discard(self._latest[key])
            self._count_drop(channel, ts)
        entry = _Entry(channel, kind, ts, data, self.next_seq(channel), market, frame=frame)
        slot = self._append(entry)
        if market:
            self._latest[key] = slot
        elif self._reliable > self.reliable_limit:
            raise OutboxOverflow(f"{self._reliable} undelivered messages")

    def put_reply(self, message: dict) -> None:
        """Queue a reply that belongs to no channel (ack, pong, error); never dropped."""
        self._append(_Entry("", "", "", {}, 0, False, raw=message))
        if self._reliable > self.reliable_limit:
            raise OutboxOverflow(f"{self._reliable} undelivered messages")

    def pop(self) -> dict | None:
        """Return the oldest waiting message as an envelope, or None when empty."""
        text = self.pop_text()
        return None if text is None else json.loads(text)

    def pop_text(self) -> str | None:
        """Return the next message as the JSON text to send, or None when empty.

        Replies and account, system and backtest messages go before market data (each channel's
        own messages stay in order): a notice never waits behind a backlog of market data,
        which conflates meanwhile.
        """
        entries = self._entries or self._market
        if not entries:
            return None
        slot, entry = entries.popitem(last=False)
        self._forget(slot, entry)
        if entry.frame is not None:
            return entry.frame.text(entry.seq)
        message = entry.raw
        if message is None:
            message = envelope(entry.channel, entry.kind, entry.seq, entry.ts, entry.data)
        return _json(message)

    def _append(self, entry: _Entry) -> int:
        self._slot += 1
        if entry.market or entry.notice:  # a notice is on a market channel: in its order
            self._market[self._slot] = entry
        else:
            self._entries[self._slot] = entry
            self._reliable += 1
        return self._slot

    def _discard(self, slot: int) -> None:
        entry = self._market.pop(slot, None) or self._entries.pop(slot)
        self._forget(slot, entry)

    def _forget(self, slot: int, entry: _Entry) -> None:
        if entry.notice:
            del self._notices[entry.channel]
        elif entry.market:
            if self._latest.get((entry.channel, entry.kind)) == slot:
                del self._latest[(entry.channel, entry.kind)]
        else:
            self._reliable -= 1

    def lost(self, channel: str, count: int, ts: str) -> None:
        """Account for ``count`` market messages lost before they reached this outbox.

        Their sequence numbers are skipped, so the client sees the gap, and told as dropped.
        """
        self._seqs[channel] = self._seqs.get(channel, 0) + count
        self._count_drop(channel, ts, count)

    def _count_drop(self, channel: str, ts: str, count: int = 1) -> None:
        """Add drops to the channel's waiting ``conflated`` notice, or queue a new one."""
        self.dropped += count
        slot = self._notices.get(channel)
        if slot is not None:
            self._market[slot].data["dropped"] += count
            return
        # At most one waiting notice per channel: bounded, so it never counts as backlog.
        notice = _Entry(
            channel, CONFLATED, ts, {"dropped": count}, self.next_seq(channel), False, True
        )
        self._notices[channel] = self._append(notice)


def decimal_text(value: Any) -> str | None:
    """Return a price or size as a plain decimal string (a float by its shortest repr)."""
    if value is None:
        return None
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")  # never "0E-10"
    return str(value)
