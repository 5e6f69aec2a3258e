"""PolygonRestClient against a local server speaking Polygon's /v2/aggs REST API."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime

import pytest

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedAuthError,
    FeedProtocolError,
    Malformed,
)
from marketdata.adapters.polygon_rest import PolygonRestClient, polygon_ticker
from marketdata.engine.events import Bar
from tests.fakes.polygon_rest import FakePolygonRest, aggregate_rows
from tests.fakes.polygon_ws import BASE_MS

pytestmark = pytest.mark.timeout(5)

START = datetime(2023, 11, 14, tzinfo=UTC)
END = datetime(2023, 11, 16, tzinfo=UTC)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(server: FakePolygonRest, **kwargs) -> PolygonRestClient:
    kwargs.setdefault("sleep", RecordingSleep())
    kwargs.setdefault("backoff", ExponentialBackoff(initial=0.1, maximum=1.0, rng=random.Random(3)))
    return PolygonRestClient("test-key", base_url=server.url, **kwargs)


async def pages_of(client: PolygonRestClient, *args, **kwargs) -> list[list[Bar]]:
    async def collect() -> list[list[Bar]]:
        return [page async for page in client.aggregates(*args, **kwargs)]

    return await asyncio.wait_for(collect(), 3)


async def test_pagination_follows_next_url_on_our_base_url() -> None:
    async with FakePolygonRest(aggregate_rows(10), page_size=4) as server:
        async with client_for(server, limit=5000) as client:
            pages = await pages_of(client, "BTC-USD", 1, "minute", START, END)
    assert [len(p) for p in pages] == [4, 4, 2]
    bars = [bar for page in pages for bar in page]
    assert [b.ts for b in bars] == [
        datetime.fromtimestamp((BASE_MS + n * 60_000) / 1000, UTC) for n in range(10)
    ]
    first = bars[0]
    assert (first.symbol, first.timeframe, first.venue) == ("BTC-USD", "1m", "polygon")
    assert (first.open, first.high, first.low, first.close) == (100.0, 102.0, 99.0, 101.0)
    assert (first.volume, first.vwap, first.trade_count) == (10.0, 100.5, 5)
    assert len(server.requests) == 3  # the public-host next_url was re-rooted on the fake
    method, path, headers = server.requests[0]
    assert method == "GET"
    assert path.startswith("/v2/aggs/ticker/X:BTCUSD/range/1/minute/1699920000000/1700092800000?")
    assert "limit=5000" in path and "sort=asc" in path and "adjusted=true" in path
    assert all(h["Authorization"] == "Bearer test-key" for _, _, h in server.requests)
    assert all("apiKey" not in p for _, p, _ in server.requests)
    assert "cursor=" in server.requests[1][1]
    assert client.truncated is None
    assert client.stats.parsed == 10 and client.stats.malformed == 0


async def test_rate_limit_429_backs_off_honouring_retry_after_then_succeeds() -> None:
    sleep = RecordingSleep()
    async with FakePolygonRest(aggregate_rows(3), rate_limited=2, retry_after="1.5") as server:
        async with client_for(server, sleep=sleep) as client:
            pages = await pages_of(client, "BTC-USD", 1, "minute", START, END)
    assert [len(p) for p in pages] == [3]
    assert sleep.delays == [1.5, 1.5]
    assert len(server.requests) == 3


async def test_rate_limit_without_retry_after_uses_exponential_backoff() -> None:
    sleep = RecordingSleep()
    async with FakePolygonRest(aggregate_rows(3), rate_limited=3, retry_after=None) as server:
        async with client_for(server, sleep=sleep) as client:
            await pages_of(client, "BTC-USD", 1, "minute", START, END)
    assert len(sleep.delays) == 3
    assert 0.05 <= sleep.delays[0] <= 0.1 and 0.1 <= sleep.delays[1] <= 0.2
    assert 0.2 <= sleep.delays[2] <= 0.4


async def test_rate_limit_retries_are_bounded() -> None:
    async with FakePolygonRest(aggregate_rows(3), rate_limited=100) as server:
        async with client_for(server, max_retries=2) as client:
            with pytest.raises(FeedProtocolError) as caught:
                await pages_of(client, "BTC-USD", 1, "minute", START, END)
        assert len(server.requests) == 3
    assert caught.value.status == 429
    assert "exceeded the maximum requests" in str(caught.value)


async def test_server_error_is_retried_then_succeeds() -> None:
    errors = [(503, {"status": "ERROR"}), (502, {"status": "ERROR"})]
    async with FakePolygonRest(aggregate_rows(2), errors=errors) as server:
        async with client_for(server, max_retries=3) as client:
            pages = await pages_of(client, "BTC-USD", 1, "minute", START, END)
        assert len(server.requests) == 3
    assert [len(p) for p in pages] == [2]


async def test_client_errors_raise_clearly_without_retry() -> None:
    body = {"status": "ERROR", "error": "Could not parse the time parameter"}
    async with FakePolygonRest(fail_with=(400, body)) as server:
        async with client_for(server) as client:
            with pytest.raises(FeedProtocolError) as caught:
                await pages_of(client, "BTC-USD", 1, "minute", START, END)
        assert len(server.requests) == 1
    assert caught.value.status == 400
    assert "Could not parse the time parameter" in caught.value.body
    assert "HTTP 400" in str(caught.value)


async def test_bad_key_is_an_auth_error() -> None:
    async with FakePolygonRest(api_key="other") as server:
        async with client_for(server) as client:
            with pytest.raises(FeedAuthError, match="401"):
                await pages_of(client, "BTC-USD", 1, "minute", START, END)


async def test_repeating_next_url_stops_pagination() -> None:
    async with FakePolygonRest(aggregate_rows(10), page_size=4, repeat_next_url=True) as server:
        async with client_for(server) as client:
            pages = await pages_of(client, "BTC-USD", 1, "minute", START, END)
        assert len(server.requests) == 2
    assert len(pages) == 2
    assert client.truncated is not None and "repeated" in client.truncated


async def test_page_cap_stops_pagination() -> None:
    async with FakePolygonRest(aggregate_rows(10), page_size=3) as server:
        async with client_for(server, max_pages=2) as client:
            pages = await pages_of(client, "BTC-USD", 1, "minute", START, END)
    assert [len(p) for p in pages] == [3, 3]
    assert client.truncated == "page cap of 2 reached"


async def test_malformed_rows_are_quarantined() -> None:
    rows = aggregate_rows(3)
    rows[1] = rows[1] | {"c": -1.0}
    quarantined: list[Malformed] = []
    async with FakePolygonRest(rows) as server:
        async with client_for(server, on_malformed=quarantined.append) as client:
            pages = await pages_of(client, "BTC-USD", 1, "minute", START, END)
    assert [b.open for b in pages[0]] == [100.0, 102.0]
    assert len(quarantined) == 1 and "'c' must be > 0" in quarantined[0].reason
    assert client.stats.malformed == 1


async def test_date_bounds_and_second_bars() -> None:
    rows = aggregate_rows(5, step_ms=1000)
    async with FakePolygonRest(rows) as server:
        async with client_for(server) as client:
            pages = await pages_of(
                client, "ETH-USD", 1, "second", date(2023, 11, 14), date(2023, 11, 14)
            )
    assert pages[0][0].timeframe == "1s"
    assert "/X:ETHUSD/range/1/second/2023-11-14/2023-11-14?" in server.requests[0][1]


def test_ticker_and_argument_validation() -> None:
    assert polygon_ticker("BTC-USD") == "X:BTCUSD"
    assert polygon_ticker("X:ETHUSD") == "X:ETHUSD"
    with pytest.raises(ValueError):
        polygon_ticker("BTCUSD")
    with pytest.raises(ValueError):
        PolygonRestClient("k", limit=0)
    assert "k3y" not in repr(PolygonRestClient("k3y"))


async def test_unsupported_bar_size_and_naive_datetimes_are_rejected() -> None:
    client = PolygonRestClient("k", base_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="unsupported bar size"):
        await anext(client.aggregates("BTC-USD", 3, "minute", START, END))
    with pytest.raises(ValueError, match="naive"):
        await anext(client.aggregates("BTC-USD", 1, "minute", datetime(2023, 1, 1), END))
    await client.close()
