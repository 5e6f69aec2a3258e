"""BinanceFeed against a local server speaking Binance's combined stream protocol."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from marketdata.adapters.base import ExponentialBackoff, Malformed
from marketdata.adapters.binance import BinanceFeed, binance_symbol
from marketdata.engine.events import Bar, Side, Trade
from tests.fakes._ws import Script
from tests.fakes.binance import FakeBinanceServer, binance_kline, binance_trade
from tests.fakes.polygon_ws import BASE_MS
from tests.fakes.streams import streaming, take

pytestmark = pytest.mark.timeout(5)


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def feed_for(server: FakeBinanceServer, symbols=("BTC-USD",), **kwargs) -> BinanceFeed:
    backoff = ExponentialBackoff(initial=0.01, max_attempts=3, rng=random.Random(2), sleep=no_sleep)
    kwargs.setdefault("backoff", backoff)
    return BinanceFeed(list(symbols), url=server.url, **kwargs)


async def test_trade_and_closed_kline() -> None:
    frames = [
        binance_trade(7, 50_000.5, 0.25, BASE_MS + 42),
        binance_kline(BASE_MS, closed=False),
        binance_trade(8, 49_999.0, 0.5, BASE_MS + 43, buyer_is_maker=True),
        binance_trade(1, 3_000.0, symbol="ETHUSDT"),  # not subscribed: the server never sends it
        binance_kline(BASE_MS, closed=True),
    ]
    async with FakeBinanceServer(Script(frames=frames)) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            buy, sell, bar = await take(events, 3)
        assert server.requested == [["btcusdt@trade", "btcusdt@kline_1m"]]
    assert buy == Trade(
        symbol="BTC-USD",
        ts=datetime(2023, 11, 14, 22, 13, 20, 42_000, tzinfo=UTC),
        price=50_000.5,
        size=0.25,
        venue="binance",
        trade_id="7",
        side=Side.BUY,
    )
    assert isinstance(sell, Trade) and sell.side is Side.SELL  # buyer was maker: seller hit
    assert bar == Bar(
        symbol="BTC-USD",
        timeframe="1m",
        ts=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        open=100.0,
        high=110.0,
        low=90.0,
        close=105.0,
        volume=10.0,
        vwap=101.0,
        trade_count=42,
        venue="binance",
    )
    assert feed.stats.filtered == 1  # the unclosed kline
    assert feed.stats.received == feed.stats.accounted()


async def test_reconnect_replays_are_deduplicated() -> None:
    frames = [binance_trade(n, 100.0 + n, t=BASE_MS + n) for n in range(6)]
    frames.insert(3, binance_kline(BASE_MS))
    script = Script(frames=frames, drop_after=4, replay_overlap=3)
    async with FakeBinanceServer(script) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            got = await take(events, 7)
        assert server.connections == 2 and server.requested[0] == server.requested[1]
    assert [e.trade_id for e in got if isinstance(e, Trade)] == [str(n) for n in range(6)]
    assert sum(isinstance(e, Bar) for e in got) == 1
    assert feed.stats.duplicates == 3 and feed.stats.reconnects == 1


async def test_malformed_messages_are_quarantined() -> None:
    bad_side = binance_trade(2) | {"m": "yes"}
    frames = [
        "not json",
        '{"stream": "btcusdt@trade"}',
        binance_trade(1, -5.0),
        bad_side,
        binance_kline(BASE_MS) | {"k": {"i": "1m", "x": True}},
        binance_trade(3),
    ]
    async with FakeBinanceServer(Script(frames=frames)) as server:
        feed = feed_for(server)
        async with streaming(feed) as events:
            got = await take(events, 6)
    assert [type(e).__name__ for e in got] == ["Malformed"] * 5 + ["Trade"]
    reasons = [e.reason for e in got if isinstance(e, Malformed)]
    assert "invalid JSON" in reasons[0] and "missing field 'data'" in reasons[1]
    assert "'p' must be > 0" in reasons[2] and "'m' is not a boolean" in reasons[3]
    assert "missing field" in reasons[4]
    assert feed.stats.malformed == 5


def test_symbol_mapping_and_streams() -> None:
    assert binance_symbol("BTC-USD") == "btcusdt"
    assert binance_symbol("eth-btc") == "ethbtc"
    with pytest.raises(ValueError):
        binance_symbol("BTCUSD")
    feed = BinanceFeed(["BTC-USD", "ETH-USD"], trades=False, kline_intervals=("1m", "1h"))
    assert feed.streams == (
        "btcusdt@kline_1m",
        "btcusdt@kline_1h",
        "ethusdt@kline_1m",
        "ethusdt@kline_1h",
    )
    with pytest.raises(ValueError):
        BinanceFeed(["BTC-USD"], kline_intervals=("3m",))
