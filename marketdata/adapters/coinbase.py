"""Coinbase Exchange public WebSocket feed: matches, ticker, level2 book, heartbeats.

Sequence numbers: Coinbase numbers every order event of a product, so on the ``matches`` and
``ticker`` channels sequences legitimately skip; they are only used to drop stale replays. The
level-2 book is the state that a lost message corrupts: when level-2 messages carry ``sequence``
and it is not exactly the previous one + 1, the adapter resyncs the product (unsubscribe and
subscribe again for a fresh snapshot). Without ``sequence`` (the public ``level2_batch``) gaps are
undetectable and a reconnect's fresh snapshot is the only repair.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedEvent,
    FeedProtocolError,
    FrameHook,
    MalformedMessage,
    int_field,
    iso_field,
    non_negative,
    parse_json,
    positive,
    price_field,
    require,
    size_field,
    symbol_field,
    to_float,
)
from marketdata.adapters.streaming import MAX_CONNECT_FAILURES, WebSocketFeed
from marketdata.engine.events import BookSnapshot, Quote, Side, Trade

logger = logging.getLogger(__name__)

COINBASE_WS_URL = "wss://ws-feed.exchange.coinbase.com"
VENUE = "coinbase"
DEFAULT_CHANNELS = ("matches", "ticker", "level2_batch", "heartbeat")
LEVEL2_CHANNELS = frozenset({"level2", "level2_batch"})
# The maker's side is in the message; the aggressor (taker) is on the other side.
_TAKER_SIDE = {"buy": Side.SELL, "sell": Side.BUY}
Change = tuple[str, float, float]


@dataclass(slots=True)
class LocalBook:
    """A product's level-2 book rebuilt from a snapshot plus incremental updates."""

    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    sequence: int | None = None

    def load(
        self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]
    ) -> None:
        """Replace the whole book with a snapshot."""
        self.bids = {price: size for price, size in bids if size > 0}
        self.asks = {price: size for price, size in asks if size > 0}

    def apply(self, changes: Iterable[Change]) -> None:
        """Apply (side, price, size) changes; size 0 removes the level."""
        for side, price, size in changes:
            levels = self.bids if side == "buy" else self.asks
            if size == 0:
                levels.pop(price, None)
            else:
                levels[price] = size

    def top(
        self, depth: int
    ) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
        """Return the best ``depth`` bids (high→low) and asks (low→high)."""
        # nlargest/nsmallest are O(n) for a small depth: no full sort of a deep book per update.
        bids = heapq.nlargest(depth, self.bids.items())
        asks = heapq.nsmallest(depth, self.asks.items())
        return tuple(bids), tuple(asks)


def parse_match(msg: Mapping[str, Any]) -> Trade:
    """Translate a match/last_match into a Trade with the taker's side."""
    maker_side = require(msg, "side")
    if not isinstance(maker_side, str) or maker_side not in _TAKER_SIDE:
        raise MalformedMessage(f"field 'side' is not buy/sell: {maker_side!r}")
    return Trade(
        symbol=_product(msg),
        ts=iso_field(msg, "time"),
        price=price_field(msg, "price"),
        size=positive(size_field(msg, "size"), "size"),
        venue=VENUE,
        trade_id=str(int_field(msg, "trade_id")),
        side=_TAKER_SIDE[maker_side],
        sequence=int_field(msg, "sequence") if msg.get("sequence") is not None else None,
    )


def parse_ticker(msg: Mapping[str, Any]) -> Quote:
    """Translate a ticker message into a top-of-book Quote."""
    bid_size = msg.get("best_bid_size")
    ask_size = msg.get("best_ask_size")
    return Quote(
        symbol=_product(msg),
        ts=iso_field(msg, "time"),
        bid=price_field(msg, "best_bid"),
        bid_size=0.0 if bid_size is None else size_field(msg, "best_bid_size"),
        ask=price_field(msg, "best_ask"),
        ask_size=0.0 if ask_size is None else size_field(msg, "best_ask_size"),
        venue=VENUE,
    )


def parse_levels(raw: Any, key: str) -> list[tuple[float, float]]:
    """Parse snapshot levels [[price, size], ...] (strings on the wire)."""
    if not isinstance(raw, list):
        raise MalformedMessage(f"field {key!r} is not a list of levels")
    levels = []
    for level in raw:
        if not isinstance(level, list) or len(level) < 2:
            raise MalformedMessage(f"field {key!r} has a bad level: {level!r}")
        levels.append(
            (positive(to_float(level[0], key), key), non_negative(to_float(level[1], key), key))
        )
    return levels


def parse_changes(msg: Mapping[str, Any]) -> list[Change]:
    """Parse l2update ``changes`` [[side, price, size], ...]."""
    raw = require(msg, "changes")
    if not isinstance(raw, list):
        raise MalformedMessage("field 'changes' is not a list")
    changes = []
    for change in raw:
        if not isinstance(change, list) or len(change) < 3 or change[0] not in ("buy", "sell"):
            raise MalformedMessage(f"bad change {change!r}")
        price = positive(to_float(change[1], "changes"), "changes")
        changes.append((change[0], price, non_negative(to_float(change[2], "changes"), "changes")))
    return changes


def _product(msg: Mapping[str, Any]) -> str:
    return symbol_field(msg, "product_id")


class CoinbaseFeed(WebSocketFeed):
    """Stream Coinbase Exchange public data; keep per-product books and resync on gaps."""

    venue = VENUE

    def __init__(
        self,
        product_ids: Sequence[str],
        channels: Iterable[str] = DEFAULT_CHANNELS,
        *,
        url: str = COINBASE_WS_URL,
        depth: int = 10,
        idle_timeout: float = 30.0,
        backoff: ExponentialBackoff | None = None,
        on_frame: FrameHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        open_timeout: float = 10.0,
        dedupe_size: int = 10_000,
        max_connect_failures: int = MAX_CONNECT_FAILURES,
    ):
        if not product_ids:
            raise ValueError("need at least one product id")
        super().__init__(
            url=url,
            idle_timeout=idle_timeout,
            backoff=backoff,
            on_frame=on_frame,
            clock=clock,
            open_timeout=open_timeout,
            dedupe_size=dedupe_size,
            max_connect_failures=max_connect_failures,
        )
        self.product_ids = tuple(product_ids)
        self.channels = tuple(channels)
        self.depth = depth
        # Snapshots may lack a time; this stamps them (injectable for deterministic tests).
        self._now = now
        self._level2 = next((c for c in self.channels if c in LEVEL2_CHANNELS), None)
        self._books: dict[str, LocalBook] = {}
        self._last_trade_id: dict[str, int] = {}
        self._last_ticker_seq: dict[str, int] = {}

    def book(self, product_id: str) -> LocalBook | None:
        """Return the live local book of ``product_id`` (None until its snapshot arrives)."""
        return self._books.get(product_id)

    async def _on_open(self, ws: ClientConnection) -> None:
        # A new connection means a new snapshot: never apply updates to a pre-drop book.
        self._books.clear()
        await self._send(ws, "subscribe", self.product_ids, self.channels)

    async def _send(
        self, ws: ClientConnection, kind: str, products: Sequence[str], channels: Sequence[str]
    ) -> None:
        message = {"type": kind, "product_ids": list(products), "channels": list(channels)}
        await ws.send(json.dumps(message))

    async def _handle_frame(self, ws: ClientConnection, raw: str | bytes) -> list[FeedEvent]:
        self.stats.received += 1
        try:
            msg = parse_json(raw)
            if not isinstance(msg, dict):
                raise MalformedMessage("message is not a JSON object")
            event = await self._dispatch(ws, msg)
        except MalformedMessage as exc:
            return [self._quarantine(raw, exc.reason)]
        return [] if event is None else [event]

    async def _dispatch(self, ws: ClientConnection, msg: Mapping[str, Any]) -> FeedEvent | None:
        """Route one message by type; None when it produced no event."""
        kind = msg.get("type")
        if kind in ("match", "last_match"):
            return self._on_match(parse_match(msg))
        if kind == "ticker":
            return self._on_ticker(msg)
        if kind == "snapshot":
            return self._on_snapshot(msg)
        if kind == "l2update":
            return await self._on_l2update(ws, msg)
        if kind == "error":
            raise FeedProtocolError(f"coinbase error: {msg.get('message')}: {msg.get('reason')}")
        if not isinstance(kind, str):
            raise MalformedMessage(f"missing or bad field 'type': {kind!r}")
        self._control()  # subscriptions, heartbeat, status, ...
        return None

    def _on_match(self, trade: Trade) -> Trade | None:
        trade_id = int(trade.trade_id)
        last = self._last_trade_id.get(trade.symbol)
        if last is not None and trade_id <= last:
            self.stats.duplicates += 1  # last_match or a replay after a reconnect
            return None
        if last is not None and trade_id > last + 1:
            # Trade ids are consecutive per product; lost trades cannot be refetched from the WS.
            self.stats.gaps += 1
            logger.warning(
                "coinbase %s: trades %d..%d missed", trade.symbol, last + 1, trade_id - 1
            )
        self._last_trade_id[trade.symbol] = trade_id
        self.stats.parsed += 1
        return trade

    def _on_ticker(self, msg: Mapping[str, Any]) -> FeedEvent | None:
        quote = parse_ticker(msg)
        if msg.get("sequence") is None:
            return self._accept(quote, None)
        sequence = int_field(msg, "sequence")
        if sequence <= self._last_ticker_seq.get(quote.symbol, -1):
            self.stats.duplicates += 1  # stale or replayed after a reconnect
            return None
        self._last_ticker_seq[quote.symbol] = sequence
        return self._accept(quote, None)

    def _on_snapshot(self, msg: Mapping[str, Any]) -> BookSnapshot | None:
        product = _product(msg)
        bids = parse_levels(require(msg, "bids"), "bids")
        asks = parse_levels(require(msg, "asks"), "asks")
        book = LocalBook()
        book.load(bids, asks)
        book.sequence = int_field(msg, "sequence") if msg.get("sequence") is not None else None
        self._books[product] = book
        ts = iso_field(msg, "time") if msg.get("time") is not None else self._now()
        self.stats.parsed += 1
        return self._snapshot(product, book, ts)

    async def _on_l2update(self, ws: ClientConnection, msg: Mapping[str, Any]) -> FeedEvent | None:
        product = _product(msg)
        book = self._books.get(product)
        if book is None:
            self.stats.dropped += 1  # before the (re)snapshot: it will already include this
            return None
        try:
            changes = parse_changes(msg)
            ts = iso_field(msg, "time")
            sequence = int_field(msg, "sequence") if msg.get("sequence") is not None else None
        except MalformedMessage:
            # A lost update corrupts the book just like a gap does: rebuild it.
            await self._resync(ws, product, "malformed update")
            raise
        if sequence is not None and book.sequence is not None:
            if sequence <= book.sequence:
                self.stats.duplicates += 1
                return None
            if sequence != book.sequence + 1:
                self.stats.gaps += 1
                self.stats.dropped += 1
                await self._resync(ws, product, f"sequence gap {book.sequence} -> {sequence}")
                return None
        book.apply(changes)
        if sequence is not None:
            book.sequence = sequence
        self.stats.parsed += 1
        return self._snapshot(product, book, ts)

    async def _resync(self, ws: ClientConnection, product: str, reason: str) -> None:
        """Forget the product's book and resubscribe its level-2 channel for a new snapshot."""
        self._books.pop(product, None)
        if self._level2 is None:
            return
        self.stats.resyncs += 1
        logger.warning("coinbase %s: resyncing book (%s)", product, reason)
        await self._send(ws, "unsubscribe", [product], [self._level2])
        await self._send(ws, "subscribe", [product], [self._level2])

    def _snapshot(self, product: str, book: LocalBook, ts: datetime) -> BookSnapshot:
        bids, asks = book.top(self.depth)
        return BookSnapshot(
            symbol=product, ts=ts, bids=bids, asks=asks, venue=VENUE, sequence=book.sequence
        )
