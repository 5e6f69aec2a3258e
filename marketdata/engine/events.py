"""Normalised market-data events shared by every feed adapter, the validator, the aggregator,
the trading engine and the backtester.

Prices and sizes are floats here (market data, not money); the trading engine converts to Decimal
at its boundary. Every timestamp is a timezone-aware UTC ``datetime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from marketdata.engine.records import fast_init


class Side(StrEnum):
    """Aggressor side of a trade (the taker), when the venue reports it."""

    BUY = "buy"
    SELL = "sell"


class Timeframe(StrEnum):
    """Bar timeframes the product stores."""

    S1 = "1s"
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        """Return the length of one bar of this timeframe in seconds."""
        return TIMEFRAME_SECONDS[self.value]


TIMEFRAME_SECONDS: dict[str, int] = {
    "1s": 1,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}


@fast_init
@dataclass(frozen=True, slots=True)
class Trade:
    """One executed trade on a venue."""

    symbol: str
    ts: datetime
    price: float
    size: float
    venue: str = "sim"
    trade_id: str = ""
    side: Side | None = None
    sequence: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book."""

    symbol: str
    ts: datetime
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    venue: str = "sim"

    @property
    def mid(self) -> float:
        """Return the mid price."""
        return (self.bid + self.ask) / 2.0


def decimal_mid(bid: float, ask: float) -> Decimal:
    """Return the mid of two float prices as a Decimal of their decimal digits: ``(bid + ask)
    / 2`` in floats carries binary noise (50120.97 and 50120.99 give 50120.979999999996)."""
    return (Decimal(str(bid)) + Decimal(str(ask))) / 2


@fast_init
@dataclass(frozen=True, slots=True)
class Bar:
    """OHLCV bar; ``ts`` is the UTC start of the window."""

    symbol: str
    timeframe: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None = None
    trade_count: int = 0
    venue: str = "sim"
    # True when this bar replaces an already-emitted bar of the same window (late trades).
    amended: bool = False


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Full order book state: ``bids`` best (highest) first, ``asks`` best (lowest) first."""

    symbol: str
    ts: datetime
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    venue: str = "sim"
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Incremental book change: each change is (side 'buy'|'sell', price, new size; 0 removes)."""

    symbol: str
    ts: datetime
    changes: tuple[tuple[str, float, float], ...]
    venue: str = "sim"
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class SentimentReading:
    """An aggregated sentiment observation, score in [-1, 1], confidence in [0, 1]."""

    symbol: str
    ts: datetime
    source: str
    score: float
    confidence: float
    label: str = "neutral"
    bullish: int = 0
    bearish: int = 0
    sources: int = 0
    extra: dict = field(default_factory=dict, compare=False)


MarketEvent = Trade | Quote | Bar | BookSnapshot | BookDelta | SentimentReading
