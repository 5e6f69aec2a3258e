"""Binance spot public streams (combined ``/stream``): trades and closed klines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedEvent,
    FrameHook,
    MalformedMessage,
    int_field,
    ms_field,
    parse_json,
    positive,
    price_field,
    require,
    require_mapping,
    size_field,
)
from marketdata.adapters.streaming import MAX_CONNECT_FAILURES, WebSocketFeed
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar, Side, Trade

logger = logging.getLogger(__name__)

BINANCE_WS_URL = "wss://stream.binance.com:9443"
BINANCE_TESTNET_WS_URL = "wss://stream.testnet.binance.vision"
VENUE = "binance"


def binance_symbol(symbol: str) -> str:
    """Map ``BTC-USD`` to Binance's stream symbol ``btcusdt`` (USD is traded as USDT)."""
    base, sep, quote = symbol.upper().partition("-")
    if not sep or not base or not quote:
        raise ValueError(f"expected a pair like 'BTC-USD', got {symbol!r}")
    return f"{base}{'USDT' if quote == 'USD' else quote}".lower()


def parse_trade(data: Mapping[str, Any], symbol: str) -> Trade:
    """Translate a ``trade`` event; ``m`` (buyer is maker) means the aggressor sold."""
    buyer_is_maker = require(data, "m")
    if not isinstance(buyer_is_maker, bool):
        raise MalformedMessage(f"field 'm' is not a boolean: {buyer_is_maker!r}")
    return Trade(
        symbol=symbol,
        ts=ms_field(data, "T"),
        price=price_field(data, "p"),
        size=positive(size_field(data, "q"), "q"),
        venue=VENUE,
        trade_id=str(int_field(data, "t")),
        side=Side.SELL if buyer_is_maker else Side.BUY,
    )


def parse_kline(kline: Mapping[str, Any], symbol: str) -> Bar:
    """Translate a kline payload (``k``) into a Bar; vwap is quote volume / base volume."""
    interval = require(kline, "i")
    if not isinstance(interval, str) or interval not in TIMEFRAME_SECONDS:
        raise MalformedMessage(f"unsupported kline interval {interval!r}")
    volume = size_field(kline, "v")
    quote_volume = size_field(kline, "q") if kline.get("q") is not None else None
    return Bar(
        symbol=symbol,
        timeframe=interval,
        ts=ms_field(kline, "t"),
        open=price_field(kline, "o"),
        high=price_field(kline, "h"),
        low=price_field(kline, "l"),
        close=price_field(kline, "c"),
        volume=volume,
        vwap=quote_volume / volume if quote_volume is not None and volume > 0 else None,
        trade_count=int_field(kline, "n") if kline.get("n") is not None else 0,
        venue=VENUE,
    )


class BinanceFeed(WebSocketFeed):
    """Stream Binance trades and closed klines for BTC-USD-style symbols, reconnecting."""

    venue = VENUE

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        trades: bool = True,
        kline_intervals: Iterable[str] = ("1m",),
        url: str = BINANCE_WS_URL,
        idle_timeout: float = 60.0,
        backoff: ExponentialBackoff | None = None,
        on_frame: FrameHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_timeout: float = 10.0,
        dedupe_size: int = 10_000,
        max_connect_failures: int = MAX_CONNECT_FAILURES,
    ):
        intervals = tuple(kline_intervals)
        unknown = [i for i in intervals if i not in TIMEFRAME_SECONDS]
        if unknown:
            raise ValueError(f"unsupported kline intervals {unknown}")
        if not symbols or not (trades or intervals):
            raise ValueError("need symbols and at least trades or one kline interval")
        super().__init__(
            url=url.rstrip("/"),
            idle_timeout=idle_timeout,
            backoff=backoff,
            on_frame=on_frame,
            clock=clock,
            open_timeout=open_timeout,
            dedupe_size=dedupe_size,
            max_connect_failures=max_connect_failures,
        )
        # Wire symbol (upper case, as in event payloads) -> our symbol.
        self._symbols = {binance_symbol(s).upper(): s for s in symbols}
        self.streams = tuple(
            stream
            for wire in (binance_symbol(s) for s in symbols)
            for stream in ([f"{wire}@trade"] if trades else [])
            + [f"{wire}@kline_{i}" for i in intervals]
        )

    def _connect_url(self) -> str:
        return f"{self.url}/stream?streams={'/'.join(self.streams)}"

    async def _handle_frame(self, ws: ClientConnection, raw: str | bytes) -> list[FeedEvent]:
        self.stats.received += 1
        try:
            msg = parse_json(raw)
            if not isinstance(msg, dict):
                raise MalformedMessage("message is not a JSON object")
            if "data" not in msg and "result" in msg:
                self._control()  # reply to a SUBSCRIBE/LIST request
                return []
            event = self._translate(require_mapping(msg, "data"))
        except MalformedMessage as exc:
            return [self._quarantine(raw, exc.reason)]
        return [] if event is None else [event]

    def _translate(self, data: Mapping[str, Any]) -> FeedEvent | None:
        """Translate a stream payload; None for interim klines, duplicates and unknown types."""
        kind = data.get("e")
        wire = data.get("s")
        symbol = self._symbols.get(wire) if isinstance(wire, str) else None
        if symbol is None:
            raise MalformedMessage(f"unexpected symbol {wire!r}")
        if kind == "trade":
            trade = parse_trade(data, symbol)
            return self._accept(trade, ("trade", symbol, trade.trade_id))
        if kind == "kline":
            kline = require_mapping(data, "k")
            closed = require(kline, "x")
            if not isinstance(closed, bool):
                raise MalformedMessage(f"field 'x' is not a boolean: {closed!r}")
            bar = parse_kline(kline, symbol)
            if not closed:
                self.stats.filtered += 1  # the bar is still forming; only final bars are emitted
                return None
            return self._accept(bar, ("kline", symbol, bar.timeframe, bar.ts))
        logger.debug("binance: ignoring event type %r", kind)
        self._control()
        return None
