"""Historical OHLCV bars from any ccxt exchange (Binance, Coinbase, Kraken, ...).

Pages are fetched with ``fetch_ohlcv(symbol, timeframe, since, limit)``, advancing ``since`` past
the last bar received. Caveats per venue: Kraken's OHLC endpoint only serves its most recent 720
candles whatever ``since`` says, and Coinbase caps pages at 300 candles.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self

import ccxt
import ccxt.async_support as ccxt_async

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedAuthError,
    FeedProtocolError,
    FeedStats,
    Malformed,
    MalformedMessage,
    Sleep,
    ms_to_utc,
    non_negative,
    positive,
    raw_text,
    to_float,
    to_utc_ms,
)
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar

logger = logging.getLogger(__name__)

# Venues that list USD pairs against the USDT stablecoin instead of fiat USD.
USDT_VENUES = frozenset({"binance"})


def ccxt_symbol(exchange_id: str, symbol: str) -> str:
    """Map ``BTC-USD`` to the venue's unified ccxt symbol (``BTC/USDT`` on Binance)."""
    base, sep, quote = symbol.upper().partition("-")
    if not sep or not base or not quote:
        raise ValueError(f"expected a pair like 'BTC-USD', got {symbol!r}")
    if quote == "USD" and exchange_id in USDT_VENUES:
        quote = "USDT"
    return f"{base}/{quote}"


def parse_ohlcv_row(row: Any, symbol: str, timeframe: str, venue: str) -> Bar:
    """Translate a ccxt ``[ts_ms, open, high, low, close, volume]`` row into a Bar."""
    if not isinstance(row, list | tuple) or len(row) < 6:
        raise MalformedMessage(f"expected [ts, o, h, l, c, v], got {row!r}")
    ts, o, h, low, c, v = row[:6]
    return Bar(
        symbol=symbol,
        timeframe=timeframe,
        ts=ms_to_utc(ts, "ts"),
        open=positive(to_float(o, "open"), "open"),
        high=positive(to_float(h, "high"), "high"),
        low=positive(to_float(low, "low"), "low"),
        close=positive(to_float(c, "close"), "close"),
        volume=non_negative(to_float(v, "volume"), "volume"),
        venue=venue,
    )


class CcxtOhlcvSource:
    """Page through a ccxt exchange's OHLCV history, yielding lists of Bars."""

    def __init__(
        self,
        exchange_id: str,
        *,
        exchange: ccxt_async.Exchange | None = None,
        config: Mapping[str, Any] | None = None,
        api_urls: Mapping[str, str] | None = None,
        markets: Sequence[Mapping[str, Any]] | None = None,
        page_limit: int = 500,
        max_pages: int = 1_000,
        max_retries: int = 5,
        backoff: ExponentialBackoff | None = None,
        sleep: Sleep = asyncio.sleep,
        on_malformed: Callable[[Malformed], None] | None = None,
    ):
        if exchange is None and exchange_id not in ccxt_async.exchanges:
            raise ValueError(f"unknown ccxt exchange {exchange_id!r}")
        if page_limit < 1 or max_pages < 1 or max_retries < 0:
            raise ValueError("page_limit and max_pages must be >= 1, max_retries >= 0")
        self.exchange_id = exchange_id
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.max_retries = max_retries
        self.stats = FeedStats()
        self.requests = 0
        self.truncated: str | None = None
        self._exchange = exchange
        self._owns_exchange = exchange is None
        self._config = dict(config or {})
        self._api_urls = dict(api_urls or {})
        self._markets = list(markets) if markets is not None else None
        self._backoff = backoff or ExponentialBackoff(initial=1.0, maximum=60.0)
        self._sleep = sleep
        self._on_malformed = on_malformed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the exchange's HTTP session if this source created the exchange."""
        if self._owns_exchange and self._exchange is not None:
            await self._exchange.close()
            self._exchange = None

    def exchange(self) -> ccxt_async.Exchange:
        """Return the ccxt exchange, creating it on first use (no I/O happens here)."""
        if self._exchange is None:
            self._exchange = getattr(ccxt_async, self.exchange_id)(self._config)
        ex = self._exchange
        if self._api_urls:
            # Point REST endpoints elsewhere (testnets, local fakes); ccxt keys them by API name.
            if isinstance(ex.urls.get("api"), dict):
                ex.urls["api"] = {**ex.urls["api"], **self._api_urls}
            else:
                ex.urls["api"] = next(iter(self._api_urls.values()))
            self._api_urls = {}
        if self._markets is not None:
            ex.set_markets(self._markets)
            self._markets = None
        return ex

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[Bar]]:
        """Yield pages of Bars of ``symbol`` (``BTC-USD``) with start <= ts < end."""
        ex = self.exchange()
        if timeframe not in TIMEFRAME_SECONDS or timeframe not in (ex.timeframes or {}):
            raise ValueError(f"{self.exchange_id} has no {timeframe!r} candles")
        step = TIMEFRAME_SECONDS[timeframe] * 1000
        market = ccxt_symbol(self.exchange_id, symbol)
        since, end_ms = to_utc_ms(start), to_utc_ms(end)
        self.truncated = None
        for _page in range(self.max_pages):
            rows = await self._fetch(market, timeframe, since)
            bars = self._parse(rows, symbol, timeframe, since, end_ms)
            if bars:
                yield bars
            last = _last_timestamp(rows)
            if last is None:
                return  # nothing more (or an empty window the venue will not skip for us)
            if last + step >= end_ms:
                return
            if last + step <= since:
                raise FeedProtocolError(f"{self.exchange_id} OHLCV did not advance past {since}")
            since = last + step
        self.truncated = f"page cap of {self.max_pages} reached"
        logger.warning("%s OHLCV %s stopped early: %s", self.exchange_id, symbol, self.truncated)

    def _parse(
        self, rows: list[Any], symbol: str, timeframe: str, since: int, end_ms: int
    ) -> list[Bar]:
        """Translate rows inside [since, end), quarantining malformed ones."""
        bars = []
        for row in rows:
            self.stats.received += 1
            try:
                bar = parse_ohlcv_row(row, symbol, timeframe, self.exchange_id)
            except MalformedMessage as exc:
                self.stats.malformed += 1
                bad = Malformed(raw=raw_text(row), reason=exc.reason, source=self.exchange_id)
                logger.warning(
                    "%s malformed OHLCV row (%s): %.200s", bad.source, bad.reason, bad.raw
                )
                if self._on_malformed is not None:
                    self._on_malformed(bad)
                continue
            if since <= to_utc_ms(bar.ts) < end_ms:
                self.stats.parsed += 1
                bars.append(bar)
            else:
                self.stats.filtered += 1
        return bars

    async def _fetch(self, market: str, timeframe: str, since: int) -> list[Any]:
        """Call fetch_ohlcv, retrying transient errors with back-off; translate ExchangeError."""
        ex = self.exchange()
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            try:
                rows = await ex.fetch_ohlcv(market, timeframe, since=since, limit=self.page_limit)
            except ccxt.OperationFailed as exc:
                # NetworkError (rate limits, timeouts, 5xx) and its parent OperationFailed (venue
                # busy, bad response) are ccxt's "try again" classes; ExchangeError is not.
                if attempt == self.max_retries:
                    raise FeedProtocolError(
                        f"{self.exchange_id} fetch_ohlcv {market} failed after "
                        f"{attempt + 1} attempts: {type(exc).__name__}: {exc}"
                    ) from exc
                delay = self._backoff.delay(attempt)
                logger.warning(
                    "%s network error (%s); retry in %.2fs", self.exchange_id, exc, delay
                )
                await self._sleep(delay)
                continue
            except ccxt.AuthenticationError as exc:
                raise FeedAuthError(f"{self.exchange_id} rejected the credentials: {exc}") from exc
            except ccxt.BaseError as exc:
                # ExchangeError (BadSymbol, BadRequest, ...) will not fix itself on retry.
                raise FeedProtocolError(
                    f"{self.exchange_id} fetch_ohlcv {market} {timeframe} since={since} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            return rows if isinstance(rows, list) else []
        raise AssertionError("unreachable")  # pragma: no cover


def _last_timestamp(rows: list[Any]) -> int | None:
    """Return the newest integer timestamp in ``rows`` (None when there is none)."""
    stamps = [r[0] for r in rows if isinstance(r, list | tuple) and r and isinstance(r[0], int)]
    return max(stamps) if stamps else None
