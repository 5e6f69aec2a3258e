"""Polygon.io (Massive) crypto WebSocket feed: XT trades, XQ quotes, XA/XAS bars, XL2 books."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedAuthError,
    FeedEvent,
    FrameHook,
    MalformedMessage,
    ms_field,
    non_negative,
    parse_json,
    positive,
    price_field,
    require,
    size_field,
    symbol_field,
    to_float,
)
from marketdata.adapters.streaming import MAX_CONNECT_FAILURES, FeedDisconnected, WebSocketFeed
from marketdata.engine.events import Bar, BookSnapshot, Quote, Side, Timeframe, Trade

logger = logging.getLogger(__name__)

POLYGON_CRYPTO_URL = "wss://socket.polygon.io/crypto"
VENUE = "polygon"
CHANNELS = frozenset({"XT", "XQ", "XA", "XAS", "XL2"})
# Polygon trade conditions: 1 = sell side, 2 = buy side (aggressor).
_CONDITION_SIDE = {1: Side.SELL, 2: Side.BUY}


def parse_trade(msg: Mapping[str, Any]) -> Trade:
    """Translate an XT message into a Trade."""
    conditions = msg.get("c") or []
    side = None
    if isinstance(conditions, list):
        codes = [c for c in conditions if isinstance(c, int) and not isinstance(c, bool)]
        side = next((_CONDITION_SIDE[c] for c in codes if c in _CONDITION_SIDE), None)
    trade_id = msg.get("i")
    if trade_id is not None and (isinstance(trade_id, bool) or not isinstance(trade_id, str | int)):
        raise MalformedMessage(f"field 'i' is not a trade id: {trade_id!r}")
    exchange = msg.get("x")
    return Trade(
        symbol=_pair(msg),
        ts=ms_field(msg, "t"),
        price=price_field(msg, "p"),
        size=positive(size_field(msg, "s"), "s"),
        venue=VENUE,
        # Polygon consolidates several exchanges whose trade ids can collide: qualify them.
        trade_id="" if trade_id in (None, "") else f"{exchange}:{trade_id}",
        side=side,
    )


def parse_quote(msg: Mapping[str, Any]) -> Quote:
    """Translate an XQ message into a Quote."""
    return Quote(
        symbol=_pair(msg),
        ts=ms_field(msg, "t"),
        bid=price_field(msg, "bp"),
        bid_size=size_field(msg, "bs"),
        ask=price_field(msg, "ap"),
        ask_size=size_field(msg, "as"),
        venue=VENUE,
    )


def parse_bar(msg: Mapping[str, Any], timeframe: str) -> Bar:
    """Translate an XA (1m) or XAS (1s) message into a Bar starting at its window start."""
    volume = size_field(msg, "v")
    vwap = msg.get("vw")
    avg_size = msg.get("z")
    trade_count = 0
    if avg_size is not None and to_float(avg_size, "z") > 0:
        # z is the average trade size, so v / z recovers the number of trades.
        trade_count = round(volume / to_float(avg_size, "z"))
    return Bar(
        symbol=_pair(msg),
        timeframe=timeframe,
        ts=ms_field(msg, "s"),
        open=price_field(msg, "o"),
        high=price_field(msg, "h"),
        low=price_field(msg, "l"),
        close=price_field(msg, "c"),
        volume=volume,
        vwap=None if vwap is None else positive(to_float(vwap, "vw"), "vw"),
        trade_count=trade_count,
        venue=VENUE,
    )


def parse_book(msg: Mapping[str, Any]) -> BookSnapshot:
    """Translate an XL2 message into a BookSnapshot (bids high→low, asks low→high)."""
    bids = _levels(require(msg, "b"), "b")
    asks = _levels(require(msg, "a"), "a")
    return BookSnapshot(
        symbol=_pair(msg),
        ts=ms_field(msg, "t"),
        bids=tuple(sorted(bids, key=lambda level: -level[0])),
        asks=tuple(sorted(asks)),
        venue=VENUE,
    )


def _levels(raw: Any, key: str) -> list[tuple[float, float]]:
    """Parse [[price, size], ...], dropping empty levels."""
    if not isinstance(raw, list):
        raise MalformedMessage(f"field {key!r} is not a list of levels")
    levels = []
    for level in raw:
        if not isinstance(level, list | tuple) or len(level) < 2:
            raise MalformedMessage(f"field {key!r} has a bad level: {level!r}")
        price = positive(to_float(level[0], key), key)
        size = non_negative(to_float(level[1], key), key)
        if size > 0:
            levels.append((price, size))
    return levels


def _pair(msg: Mapping[str, Any]) -> str:
    return symbol_field(msg, "pair")


_PARSERS: dict[str, Callable[[Mapping[str, Any]], FeedEvent]] = {
    "XT": parse_trade,
    "XQ": parse_quote,
    "XA": lambda msg: parse_bar(msg, Timeframe.M1.value),
    "XAS": lambda msg: parse_bar(msg, Timeframe.S1.value),
    "XL2": parse_book,
}


def dedupe_key(ev: str, event: FeedEvent) -> Hashable:
    """Return the key under which a replayed copy of ``event`` is recognised."""
    if isinstance(event, Trade) and event.trade_id:
        return (ev, event.symbol, event.trade_id)
    # Events are frozen dataclasses, so identical content means the same message replayed.
    return (ev, event)


class PolygonCryptoStream(WebSocketFeed):
    """Stream Polygon crypto events: auth, subscribe per pair, reconnect, re-auth, de-duplicate."""

    venue = VENUE

    def __init__(
        self,
        api_key: str,
        symbols: Sequence[str],
        channels: Iterable[str] = ("XT", "XQ", "XA"),
        *,
        url: str = POLYGON_CRYPTO_URL,
        idle_timeout: float = 30.0,
        backoff: ExponentialBackoff | None = None,
        on_frame: FrameHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_timeout: float = 10.0,
        dedupe_size: int = 10_000,
        max_connect_failures: int = MAX_CONNECT_FAILURES,
    ):
        channels = tuple(channels)
        unknown = set(channels) - CHANNELS
        if unknown:
            raise ValueError(f"unknown Polygon crypto channels {sorted(unknown)}")
        if not api_key:
            raise ValueError("Polygon api_key is empty")
        if not symbols or not channels:
            raise ValueError("need at least one symbol and one channel")
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
        self.symbols = tuple(symbols)
        self.channels = channels
        self._api_key = api_key

    def __repr__(self) -> str:
        # Never show the API key.
        return f"PolygonCryptoStream(url={self.url!r}, symbols={self.symbols!r})"

    @property
    def subscription_params(self) -> str:
        """Return the subscribe params, e.g. ``XT.BTC-USD,XQ.BTC-USD``."""
        return ",".join(f"{ch}.{sym}" for sym in self.symbols for ch in self.channels)

    async def _on_open(self, ws: ClientConnection) -> None:
        await self._await_status(ws, "connected")
        await ws.send(json.dumps({"action": "auth", "params": self._api_key}))
        await self._await_status(ws, "auth_success")
        await ws.send(json.dumps({"action": "subscribe", "params": self.subscription_params}))

    async def _await_status(self, ws: ClientConnection, wanted: str) -> None:
        """Read handshake frames until a status ``wanted`` arrives (auth_failed is fatal)."""
        while True:
            raw = await self._receive(ws)
            try:
                payload = parse_json(raw)
            except MalformedMessage as exc:
                self.stats.received += 1
                self._quarantine(raw, exc.reason)
                raise FeedDisconnected(f"bad handshake frame waiting for {wanted}") from exc
            for msg in payload if isinstance(payload, list) else [payload]:
                self.stats.received += 1
                if isinstance(msg, dict) and msg.get("ev") == "status":
                    if self._on_status(msg) == wanted:
                        return
                else:
                    # Data cannot legitimately precede auth; drop it rather than trust it.
                    self.stats.dropped += 1

    def _on_status(self, msg: Mapping[str, Any]) -> str:
        """Count and log a status message; raise FeedAuthError on auth_failed."""
        self._control()
        status = str(msg.get("status", ""))
        message = str(msg.get("message", ""))
        if status == "auth_failed":
            raise FeedAuthError(f"Polygon rejected the API key: {message}")
        if status in ("error", "max_connections"):
            logger.warning("polygon status %s: %s", status, message)
        else:
            logger.info("polygon status %s: %s", status, message)
        return status

    async def _handle_frame(self, ws: ClientConnection, raw: str | bytes) -> list[FeedEvent]:
        try:
            payload = parse_json(raw)
        except MalformedMessage as exc:
            self.stats.received += 1
            return [self._quarantine(raw, exc.reason)]
        if not isinstance(payload, list):
            self.stats.received += 1
            return [self._quarantine(raw, "frame is not a JSON array")]
        events = []
        for msg in payload:
            self.stats.received += 1
            event = self._translate(msg)
            if event is not None:
                events.append(event)
        return events

    def _translate(self, msg: Any) -> FeedEvent | None:
        """Translate one event object; None for status, unknown types and duplicates."""
        if not isinstance(msg, dict):
            return self._quarantine(msg, "event is not a JSON object")
        ev = msg.get("ev")
        if ev == "status":
            self._on_status(msg)
            return None
        if not isinstance(ev, str):
            return self._quarantine(msg, f"missing or bad field 'ev': {ev!r}")
        parser = _PARSERS.get(ev)
        if parser is None:
            logger.debug("polygon: ignoring event type %r", ev)
            self._control()
            return None
        try:
            event = parser(msg)
        except MalformedMessage as exc:
            return self._quarantine(msg, exc.reason)
        return self._accept(event, dedupe_key(ev, event))
