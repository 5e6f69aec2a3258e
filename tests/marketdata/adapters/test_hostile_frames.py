"""No single frame stops a WebSocket feed: hostile frames are quarantined, the feed goes on.

Each venue's local fake sends good trades around frames built to break a parser: 200 KB of
nested ``[`` (RecursionError in json), NUL bytes and over-long names in the symbol, wrong types,
numbers beyond float range, NaN and Infinity, and a timestamp written with a digit that ``int``
refuses.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from marketdata.adapters.base import ExponentialBackoff, Malformed, parse_json, raw_text
from marketdata.adapters.binance import BinanceFeed
from marketdata.adapters.coinbase import CoinbaseFeed
from marketdata.adapters.polygon import PolygonCryptoStream
from marketdata.engine.events import Trade
from tests.fakes import Script
from tests.fakes.binance import FakeBinanceServer, binance_trade
from tests.fakes.coinbase import FakeCoinbaseServer, match, raw
from tests.fakes.polygon_ws import BASE_MS, FakePolygonServer, polygon_trade
from tests.fakes.streams import streaming, take

pytestmark = pytest.mark.timeout(10)

DEEP = "[" * 200_000  # the 200 KB frame of the issue
HUGE = "9" * 400  # an integer JSON accepts and float() cannot hold


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def backoff() -> ExponentialBackoff:
    return ExponentialBackoff(initial=0.01, max_attempts=3, rng=random.Random(3), sleep=no_sleep)


def hostile_fields(trade: dict, symbol_key: str, price_key: str) -> list[str]:
    """Return frames of one trade each spoiled in one field (as raw JSON text)."""
    spoiled = [
        {symbol_key: "BTC\u0000-USD"},
        {symbol_key: "X" * 33},
        {symbol_key: 12},
        {price_key: {"nested": [1, 2]}},
        {price_key: "NaN"},
    ]
    frames = [json.dumps({**trade, **patch}) for patch in spoiled]
    text = json.dumps(trade)
    good_price = json.dumps(trade[price_key])
    for bad in (HUGE, "NaN", "Infinity", "-Infinity", "1e999"):
        frames.append(text.replace(f'"{price_key}": {good_price}', f'"{price_key}": {bad}', 1))
    return frames


def test_parse_json_quarantines_deep_nesting_instead_of_raising_recursion_error():
    with pytest.raises(Exception) as caught:
        parse_json(DEEP)
    assert type(caught.value).__name__ == "MalformedMessage"
    assert "nested too deeply" in str(caught.value)
    nested: list = []
    for _ in range(5_000):
        nested = [nested]
    assert raw_text(nested).startswith("<unprintable")  # never a RecursionError either


async def collect_trades(events, count: int) -> tuple[list[Trade], list[Malformed]]:
    """Read until ``count`` trades arrived; return trades and quarantined frames."""
    trades: list[Trade] = []
    bad: list[Malformed] = []
    async with asyncio.timeout(8):
        while len(trades) < count:
            event = await anext(events)
            (bad if isinstance(event, Malformed) else trades).append(event)
    return trades, bad


async def test_polygon_feed_survives_every_hostile_frame():
    good = polygon_trade(i="g0", t=BASE_MS)
    hostile = [DEEP, "[" * 900 + "]" * 900, *(f"[{f}]" for f in hostile_fields(good, "pair", "p"))]
    hostile.append(f"[{json.dumps({**good, 't': '²'})}]")
    frames = [[good], *hostile, [polygon_trade(i="g1", t=BASE_MS + 1)]]
    async with FakePolygonServer(Script(frames=frames)) as server:
        feed = PolygonCryptoStream(
            "test-key", ["BTC-USD"], ("XT",), url=server.url, backoff=backoff()
        )
        async with streaming(feed, timeout=5) as events:
            trades, bad = await collect_trades(events, 2)
        assert server.connections == 1  # no reconnect: the session itself survived
    assert [t.trade_id for t in trades] == ["1:g0", "1:g1"]
    assert len(bad) == len(hostile) and feed.stats.malformed == len(hostile)
    assert feed.stats.received == feed.stats.accounted()
    assert all("\x00" not in t.symbol for t in trades)


async def test_coinbase_feed_survives_every_hostile_frame():
    template = {
        "type": "match",
        "trade_id": 5,
        "side": "buy",
        "product_id": "BTC-USD",
        "price": "50000.0",
        "size": "0.1",
        "time": "2023-11-14T22:13:20Z",
    }
    hostile = [DEEP, *hostile_fields(template, "product_id", "price")]
    hostile.append(json.dumps({**template, "trade_id": "²"}))
    steps = [match("BTC-USD", 50_000.0, 0.1, "buy"), *(raw(f) for f in hostile)]
    steps.append(match("BTC-USD", 50_001.0, 0.2, "sell"))
    async with FakeCoinbaseServer(steps) as server:
        feed = CoinbaseFeed(["BTC-USD"], ("matches",), url=server.url, backoff=backoff())
        async with streaming(feed, timeout=5) as events:
            trades, bad = await collect_trades(events, 2)
        assert server.connections == 1
    assert [t.price for t in trades] == [50_000.0, 50_001.0]
    assert len(bad) == len(hostile)
    assert feed.stats.received == feed.stats.accounted()


async def test_binance_feed_survives_every_hostile_frame():
    good = {"stream": "btcusdt@trade", "data": binance_trade(1, 50_000.0, t=BASE_MS)}
    data = good["data"]
    spoiled = hostile_fields(data, "s", "p")
    hostile = [DEEP, *(f'{{"stream":"btcusdt@trade","data":{f}}}' for f in spoiled)]
    frames = [good, *hostile, {"stream": "btcusdt@trade", "data": binance_trade(2, 50_001.0)}]
    async with FakeBinanceServer(Script(frames=frames)) as server:
        feed = BinanceFeed(["BTC-USD"], kline_intervals=(), url=server.url, backoff=backoff())
        async with streaming(feed, timeout=5) as events:
            trades, bad = await collect_trades(events, 2)
        assert server.connections == 1
    assert [t.trade_id for t in trades] == ["1", "2"]
    assert len(bad) == len(hostile)
    assert feed.stats.received == feed.stats.accounted()


async def test_untranslatable_frame_is_quarantined_by_the_shared_session_loop():
    """A parser failure no adapter foresaw costs one frame, logged, not the connection."""

    class BrittleStream(PolygonCryptoStream):
        # A real subclass with a real defect: the kind of bug the shared net must contain.
        def _translate(self, msg):
            if isinstance(msg, dict) and msg.get("i") == "boom":
                raise KeyError("a bug in a parser")
            return super()._translate(msg)

    frames = [[polygon_trade(i="boom")], [polygon_trade(i="ok", t=BASE_MS + 5)]]
    async with FakePolygonServer(Script(frames=frames)) as server:
        feed = BrittleStream("test-key", ["BTC-USD"], ("XT",), url=server.url, backoff=backoff())
        async with streaming(feed, timeout=5) as events:
            first, second = await take(events, 2, timeout=5)
        assert server.connections == 1
    assert isinstance(first, Malformed) and "KeyError" in first.reason
    assert isinstance(second, Trade) and second.trade_id == "1:ok"
    assert feed.stats.received == feed.stats.accounted()
