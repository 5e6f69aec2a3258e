"""CcxtOhlcvSource driving the real ccxt Binance client against a local Binance REST server."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from marketdata.adapters.base import ExponentialBackoff, FeedProtocolError, Malformed
from marketdata.adapters.ccxt_ohlcv import CcxtOhlcvSource, ccxt_symbol, parse_ohlcv_row
from marketdata.engine.events import Bar
from tests.fakes.binance import FakeBinanceRest, binance_spot_market, kline_rows
from tests.fakes.polygon_ws import BASE_MS

pytestmark = pytest.mark.timeout(5)

START = datetime.fromtimestamp(BASE_MS / 1000, UTC)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def source_for(server: FakeBinanceRest, **kwargs) -> CcxtOhlcvSource:
    kwargs.setdefault("sleep", RecordingSleep())
    kwargs.setdefault("backoff", ExponentialBackoff(initial=0.1, rng=random.Random(5)))
    return CcxtOhlcvSource(
        "binance",
        config={"enableRateLimit": False},
        api_urls={"public": f"{server.url}/api/v3"},
        markets=[binance_spot_market("BTC/USDT"), binance_spot_market("ETH/USDT")],
        **kwargs,
    )


async def collect(source: CcxtOhlcvSource, *args) -> list[list[Bar]]:
    async def run() -> list[list[Bar]]:
        return [page async for page in source.bars(*args)]

    return await asyncio.wait_for(run(), 4)


def start_times(server: FakeBinanceRest) -> list[int]:
    return [int(parse_qs(urlsplit(p).query)["startTime"][0]) for _, p, _ in server.requests]


async def test_fetch_ohlcv_paginates_by_advancing_since() -> None:
    async with FakeBinanceRest(kline_rows(10)) as server:
        async with source_for(server, page_limit=4) as source:
            pages = await collect(source, "BTC-USD", "1m", START, START + timedelta(hours=1))
        assert start_times(server) == [
            BASE_MS,
            BASE_MS + 4 * 60_000,
            BASE_MS + 8 * 60_000,
            BASE_MS + 10 * 60_000,
        ]
        assert all("symbol=BTCUSDT" in p and "interval=1m" in p for _, p, _ in server.requests)
    assert [len(p) for p in pages] == [4, 4, 2]
    bars = [b for p in pages for b in p]
    assert [b.ts for b in bars] == [START + timedelta(minutes=n) for n in range(10)]
    assert bars[0] == Bar(
        symbol="BTC-USD",
        timeframe="1m",
        ts=START,
        open=100.0,
        high=102.0,
        low=99.0,
        close=101.0,
        volume=10.0,
        venue="binance",
    )
    assert source.truncated is None


async def test_end_is_exclusive_and_stops_paging() -> None:
    async with FakeBinanceRest(kline_rows(10)) as server:
        async with source_for(server, page_limit=4) as source:
            pages = await collect(source, "BTC-USD", "1m", START, START + timedelta(minutes=6))
        assert len(server.requests) == 2
    assert [b.ts for p in pages for b in p] == [START + timedelta(minutes=n) for n in range(6)]


async def test_network_errors_are_retried_with_backoff() -> None:
    errors = [
        (503, "<html><body>503 Service Temporarily Unavailable</body></html>"),
        (429, {"code": -1003, "msg": "Too many requests; current limit is 6000 per minute."}),
    ]
    sleep = RecordingSleep()
    async with FakeBinanceRest(kline_rows(3), errors=errors) as server:
        async with source_for(server, sleep=sleep) as source:
            pages = await collect(source, "BTC-USD", "1m", START, START + timedelta(hours=1))
        assert len(server.requests) == 4  # two failures, the page, the empty follow-up
    assert [len(p) for p in pages] == [3]
    assert len(sleep.delays) == 2
    assert 0.05 <= sleep.delays[0] <= 0.1 and 0.1 <= sleep.delays[1] <= 0.2


async def test_network_error_retries_are_bounded() -> None:
    errors = [(503, "<html>503 Service Temporarily Unavailable</html>")] * 5
    async with FakeBinanceRest(kline_rows(3), errors=errors) as server:
        async with source_for(server, max_retries=2) as source:
            with pytest.raises(FeedProtocolError, match="after 3 attempts"):
                await collect(source, "BTC-USD", "1m", START, START + timedelta(hours=1))
        assert len(server.requests) == 3


async def test_exchange_errors_are_raised_clearly_without_retry() -> None:
    async with FakeBinanceRest(kline_rows(3)) as server:
        async with source_for(server) as source:
            with pytest.raises(FeedProtocolError, match="BadSymbol.*Invalid symbol") as caught:
                await collect(source, "ETH-USD", "1m", START, START + timedelta(hours=1))
        assert len(server.requests) == 1
    assert "ETH/USDT" in str(caught.value)


async def test_malformed_rows_are_quarantined() -> None:
    rows = kline_rows(3)
    rows[1][4] = "-3.0"  # negative close
    quarantined: list[Malformed] = []
    async with FakeBinanceRest(rows) as server:
        async with source_for(server, on_malformed=quarantined.append) as source:
            pages = await collect(source, "BTC-USD", "1m", START, START + timedelta(hours=1))
    assert [len(p) for p in pages] == [2]
    assert len(quarantined) == 1 and "'close' must be > 0" in quarantined[0].reason


async def test_unsupported_timeframe_is_rejected() -> None:
    source = CcxtOhlcvSource("binance")
    with pytest.raises(ValueError, match="2m"):
        await anext(source.bars("BTC-USD", "2m", START, START + timedelta(hours=1)))
    await source.close()


def test_symbol_mapping_and_row_parsing() -> None:
    assert ccxt_symbol("binance", "BTC-USD") == "BTC/USDT"
    assert ccxt_symbol("coinbase", "BTC-USD") == "BTC/USD"
    assert ccxt_symbol("kraken", "eth-usd") == "ETH/USD"
    assert ccxt_symbol("binance", "ETH-BTC") == "ETH/BTC"
    with pytest.raises(ValueError):
        CcxtOhlcvSource("no-such-exchange")
    bar = parse_ohlcv_row([BASE_MS, 1, 2, 0.5, 1.5, 0], "BTC-USD", "1m", "kraken")
    assert bar.ts == START and bar.volume == 0.0
