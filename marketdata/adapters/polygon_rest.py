"""Polygon.io (Massive) REST client for historical crypto aggregates (bars)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import date, datetime
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from yarl import URL

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedAuthError,
    FeedProtocolError,
    FeedStats,
    Malformed,
    MalformedMessage,
    Sleep,
    int_field,
    ms_field,
    parse_json,
    positive,
    price_field,
    raw_text,
    size_field,
    to_float,
    to_utc_ms,
)
from marketdata.engine.events import Bar

logger = logging.getLogger(__name__)

POLYGON_REST_URL = "https://api.polygon.io"
VENUE = "polygon"
MAX_LIMIT = 50_000
# A server asking us to wait longer than this is misbehaving; fail loudly instead of hanging.
MAX_RETRY_AFTER = 300.0
TIMEFRAMES: dict[tuple[int, str], str] = {
    (1, "second"): "1s",
    (1, "minute"): "1m",
    (5, "minute"): "5m",
    (15, "minute"): "15m",
    (1, "hour"): "1h",
    (4, "hour"): "4h",
    (1, "day"): "1d",
}


def polygon_ticker(symbol: str) -> str:
    """Map ``BTC-USD`` to Polygon's crypto ticker ``X:BTCUSD``."""
    if symbol.startswith("X:"):
        return symbol
    base, sep, quote = symbol.partition("-")
    if not sep or not base or not quote:
        raise ValueError(f"expected a pair like 'BTC-USD', got {symbol!r}")
    return f"X:{base.upper()}{quote.upper()}"


def parse_aggregate(row: Mapping[str, Any], symbol: str, timeframe: str) -> Bar:
    """Translate one ``results[]`` row into a Bar."""
    vwap = row.get("vw")
    return Bar(
        symbol=symbol,
        timeframe=timeframe,
        ts=ms_field(row, "t"),
        open=price_field(row, "o"),
        high=price_field(row, "h"),
        low=price_field(row, "l"),
        close=price_field(row, "c"),
        volume=size_field(row, "v"),
        vwap=None if vwap is None else positive(to_float(vwap, "vw"), "vw"),
        trade_count=int_field(row, "n") if row.get("n") is not None else 0,
        venue=VENUE,
    )


def retry_after_seconds(value: str | None) -> float | None:
    """Return a numeric ``Retry-After`` in seconds (HTTP-dates fall back to back-off)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class PolygonRestClient:
    """Fetch aggregates page by page, following ``next_url`` with back-off on 429 and 5xx."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = POLYGON_REST_URL,
        session: aiohttp.ClientSession | None = None,
        max_pages: int = 100,
        limit: int = MAX_LIMIT,
        max_retries: int = 5,
        sleep: Sleep = asyncio.sleep,
        backoff: ExponentialBackoff | None = None,
        timeout: float = 30.0,
        on_malformed: Callable[[Malformed], None] | None = None,
    ):
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in 1..{MAX_LIMIT}")
        if max_pages < 1 or max_retries < 0:
            raise ValueError("max_pages must be >= 1 and max_retries >= 0")
        self.base_url = base_url.rstrip("/")
        self.max_pages = max_pages
        self.limit = limit
        self.max_retries = max_retries
        self.stats = FeedStats()
        self.requests = 0
        # Why the last aggregates() stopped early (page cap, repeating next_url), else None.
        self.truncated: str | None = None
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._backoff = backoff or ExponentialBackoff(initial=1.0, maximum=60.0)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_malformed = on_malformed

    def __repr__(self) -> str:
        return f"PolygonRestClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def aggregates(
        self,
        symbol: str,
        multiplier: int,
        timespan: str,
        start: datetime | date,
        end: datetime | date,
        *,
        sort: str = "asc",
        adjusted: bool = True,
    ) -> AsyncIterator[list[Bar]]:
        """Yield pages of Bars for ``symbol`` between ``start`` and ``end`` (inclusive)."""
        timeframe = TIMEFRAMES.get((multiplier, timespan))
        if timeframe is None:
            raise ValueError(
                f"unsupported bar size {multiplier} {timespan}; use {list(TIMEFRAMES)}"
            )
        path = (
            f"/v2/aggs/ticker/{polygon_ticker(symbol)}/range/{multiplier}/{timespan}/"
            f"{_bound(start)}/{_bound(end)}"
        )
        url: URL | str = f"{self.base_url}{path}"
        params: dict[str, str] | None = {
            "adjusted": str(adjusted).lower(),
            "sort": sort,
            "limit": str(self.limit),
        }
        self.truncated = None
        seen: set[str] = set()
        for _page in range(self.max_pages):
            payload = await self._get_json(url, params)
            bars = self._bars(payload, symbol, timeframe)
            if bars:
                yield bars
            next_url = payload.get("next_url")
            if not next_url:
                return
            url, params = self._follow(str(next_url)), None
            if str(url) in seen:
                self._truncate(f"next_url repeated: {next_url}")
                return
            seen.add(str(url))
        self._truncate(f"page cap of {self.max_pages} reached")

    def _truncate(self, reason: str) -> None:
        self.truncated = reason
        logger.warning("polygon aggregates stopped early: %s", reason)

    def _follow(self, next_url: str) -> URL:
        """Return ``next_url`` re-rooted on our base URL, so the key only goes where we chose."""
        parts = urlsplit(next_url)
        base = urlsplit(self.base_url)
        path = base.path.rstrip("/") + parts.path
        return URL(urlunsplit((base.scheme, base.netloc, path, parts.query, "")), encoded=True)

    def _bars(self, payload: Mapping[str, Any], symbol: str, timeframe: str) -> list[Bar]:
        """Translate a page's results, quarantining bad rows instead of failing the backfill."""
        rows = payload.get("results") or []
        if not isinstance(rows, list):
            raise FeedProtocolError(f"polygon 'results' is not a list: {raw_text(rows)[:200]}")
        bars = []
        for row in rows:
            self.stats.received += 1
            try:
                if not isinstance(row, Mapping):
                    raise MalformedMessage("result row is not an object")
                bars.append(parse_aggregate(row, symbol, timeframe))
                self.stats.parsed += 1
            except MalformedMessage as exc:
                self.stats.malformed += 1
                bad = Malformed(raw=raw_text(row), reason=exc.reason, source=VENUE)
                logger.warning("polygon malformed aggregate (%s): %.200s", bad.reason, bad.raw)
                if self._on_malformed is not None:
                    self._on_malformed(bad)
        return bars

    async def _get_json(self, url: URL | str, params: dict[str, str] | None) -> Mapping[str, Any]:
        """GET with bounded retries on 429/5xx/network errors; raise clearly on anything else."""
        for attempt in range(self.max_retries + 1):
            try:
                status, body, retry_after = await self._request(url, params)
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = FeedProtocolError(f"polygon request to {self.base_url} failed: {exc!r}")
                delay = self._backoff.delay(attempt)
            else:
                if status == 200:
                    return _decode(body)
                if status in (401, 403):
                    raise FeedAuthError(f"polygon rejected the API key (HTTP {status}): {body}")
                if status != 429 and status < 500:
                    raise FeedProtocolError(
                        "polygon aggregates request failed", status=status, body=body
                    )
                error = FeedProtocolError(
                    "polygon aggregates request failed", status=status, body=body
                )
                delay = retry_after if retry_after is not None else self._backoff.delay(attempt)
                if delay > MAX_RETRY_AFTER:
                    raise error
            if attempt == self.max_retries:
                raise error
            logger.warning("polygon: %s; retry %d in %.2fs", error, attempt + 1, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self, url: URL | str, params: dict[str, str] | None
    ) -> tuple[int, str, float | None]:
        """Send one GET and return (status, body text, Retry-After seconds)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self.requests += 1
        headers = {"Authorization": f"Bearer {self._api_key}"}
        async with self._session.get(url, params=params, headers=headers) as response:
            body = await response.text()
            return response.status, body, retry_after_seconds(response.headers.get("Retry-After"))


def _bound(moment: datetime | date) -> str:
    """Format a range bound: aware datetimes as Unix ms, dates as YYYY-MM-DD."""
    if isinstance(moment, datetime):
        return str(to_utc_ms(moment))
    return moment.isoformat()


def _decode(body: str) -> Mapping[str, Any]:
    """Decode a 200 body; Polygon signals some errors with status ERROR in a 200 too."""
    try:
        payload = parse_json(body)
    except MalformedMessage as exc:
        raise FeedProtocolError(f"polygon returned invalid JSON: {body[:200]!r}") from exc
    if not isinstance(payload, Mapping):
        raise FeedProtocolError(f"polygon returned a non-object: {body[:200]!r}")
    if payload.get("status") == "ERROR":
        raise FeedProtocolError("polygon returned an error", status=200, body=body)
    return payload
