"""Shared adapter pieces: back-off, replay memory, wire-parsing helpers, and parser robustness."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.adapters import binance, coinbase, polygon, polygon_rest
from marketdata.adapters.base import (
    BackoffExhausted,
    ExponentialBackoff,
    FeedProtocolError,
    Malformed,
    MalformedMessage,
    MarketDataFeed,
    SeenKeys,
    int_field,
    iso_field,
    ms_to_utc,
    price_field,
    to_float,
    to_utc_ms,
)
from marketdata.adapters.ccxt_ohlcv import parse_ohlcv_row
from marketdata.engine.events import Bar, BookSnapshot, Quote, Trade

pytestmark = pytest.mark.timeout(10)


@settings(max_examples=200, deadline=None)
@given(
    initial=st.floats(min_value=0.001, max_value=5),
    factor=st.floats(min_value=1, max_value=4),
    jitter=st.floats(min_value=0, max_value=1),
    attempt=st.integers(min_value=0, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delay_stays_within_jitter_band_and_cap(initial, factor, jitter, attempt, seed):
    backoff = ExponentialBackoff(
        initial=initial,
        maximum=initial * 100,
        factor=factor,
        jitter=jitter,
        rng=random.Random(seed),
    )
    base = min(initial * 100, initial * factor ** min(attempt, 64))
    delay = backoff.delay(attempt)
    assert base * (1 - jitter) - 1e-12 <= delay <= base + 1e-12
    assert delay <= backoff.maximum


async def test_backoff_grows_then_is_exhausted_and_resets() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = ExponentialBackoff(initial=1, maximum=5, jitter=0, max_attempts=4, sleep=sleep)
    for _ in range(4):
        await asyncio.wait_for(backoff.wait(), 1)
    assert slept == [1, 2, 4, 5]
    with pytest.raises(BackoffExhausted):
        await backoff.wait()
    assert isinstance(BackoffExhausted("x"), FeedProtocolError)
    backoff.reset()
    assert await backoff.wait() == 1


def test_backoff_jitter_is_deterministic_with_a_seeded_rng() -> None:
    one = ExponentialBackoff(rng=random.Random(42))
    two = ExponentialBackoff(rng=random.Random(42))
    assert [one.delay(n) for n in range(6)] == [two.delay(n) for n in range(6)]
    with pytest.raises(ValueError):
        ExponentialBackoff(initial=2, maximum=1)


def test_seen_keys_is_a_bounded_lru() -> None:
    seen = SeenKeys(capacity=3)
    assert [seen.add(k) for k in "abc"] == [True] * 3
    assert seen.add("a") is False  # refreshes 'a'
    assert seen.add("d") is True  # evicts 'b', the least recently seen
    assert "b" not in seen and "a" in seen and len(seen) == 3
    assert seen.add("b") is True


def test_wire_helpers() -> None:
    assert ms_to_utc(1_700_000_000_123) == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)
    assert to_utc_ms(datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)) == 1_700_000_000_123
    with pytest.raises(ValueError, match="naive"):
        to_utc_ms(datetime(2023, 1, 1))
    assert to_float("1.5", "p") == 1.5
    for bad in (True, None, "nan", "inf", [1], "1,5"):
        with pytest.raises(MalformedMessage):
            to_float(bad, "p")
    with pytest.raises(MalformedMessage, match="must be > 0"):
        price_field({"p": "0"}, "p")
    assert int_field({"n": "12"}, "n") == 12
    with pytest.raises(MalformedMessage):
        int_field({"n": 1.5}, "n")
    with pytest.raises(MalformedMessage, match="out of range"):
        ms_to_utc(1_700_000_000_123_000)  # microseconds sent as ms
    assert iso_field({"time": "2024-01-01T00:00:00.123456789Z"}, "time").microsecond == 123456
    with pytest.raises(MalformedMessage, match="no timezone"):
        iso_field({"time": "2024-01-01T00:00:00"}, "time")


def test_feeds_satisfy_the_protocol() -> None:
    feeds = [
        polygon.PolygonCryptoStream("k", ["BTC-USD"]),
        coinbase.CoinbaseFeed(["BTC-USD"]),
        binance.BinanceFeed(["BTC-USD"]),
    ]
    assert all(isinstance(feed, MarketDataFeed) for feed in feeds)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


def messages(keys: list[str], base: dict) -> st.SearchStrategy[dict]:
    """Valid-looking messages with some fields replaced by arbitrary JSON or removed."""
    return st.builds(
        lambda overrides, dropped: {
            k: v for k, v in (base | overrides).items() if k not in dropped
        },
        st.dictionaries(st.sampled_from(keys), json_values, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
    )


POLYGON_XT = {"ev": "XT", "pair": "BTC-USD", "p": 1.0, "s": 1.0, "t": 1_700_000_000_000, "c": [1]}


@settings(max_examples=200, deadline=None)
@given(msg=messages(["ev", "pair", "p", "s", "t", "c", "i", "x", "bp", "o", "b"], POLYGON_XT))
def test_polygon_translate_never_raises_on_garbage(msg: dict) -> None:
    stream = polygon.PolygonCryptoStream("k", ["BTC-USD"])
    if msg.get("ev") == "status" and msg.get("status") == "auth_failed":
        return
    event = stream._translate(msg)
    assert event is None or isinstance(event, Trade | Quote | Bar | BookSnapshot | Malformed)
    if isinstance(event, Trade):
        assert event.price > 0 and event.size > 0 and event.ts.tzinfo is not None
    assert stream.stats.accounted() == 1


BINANCE_TRADE = {
    "e": "trade",
    "s": "BTCUSDT",
    "t": 1,
    "p": "1",
    "q": "1",
    "T": 1_700_000_000_000,
    "m": True,
}


BINANCE_KLINE = {
    "t": 1_700_000_000_000,
    "i": "1m",
    "o": "1",
    "h": "1",
    "l": "1",
    "c": "1",
    "v": "1",
    "n": 1,
    "x": True,
}


@settings(max_examples=200, deadline=None)
@given(
    msg=messages(["e", "s", "t", "p", "q", "T", "m", "k"], BINANCE_TRADE)
    | messages(["t", "i", "o", "c", "v", "q", "n", "x"], BINANCE_KLINE).map(
        lambda k: {"e": "kline", "s": "BTCUSDT", "k": k}
    )
)
def test_binance_frames_never_raise_on_garbage(msg: dict) -> None:
    feed = binance.BinanceFeed(["BTC-USD"])
    events = asyncio.run(feed._handle_frame(None, json.dumps({"stream": "x", "data": msg})))
    assert all(isinstance(e, Trade | Bar | Malformed) for e in events)
    assert feed.stats.received == feed.stats.accounted() == 1


COINBASE_MATCH = {
    "type": "match",
    "product_id": "BTC-USD",
    "trade_id": 1,
    "price": "1",
    "size": "1",
    "side": "buy",
    "time": "2024-01-01T00:00:00Z",
}


@settings(max_examples=200, deadline=None)
@given(
    msg=messages(
        ["product_id", "trade_id", "price", "size", "side", "time", "sequence"], COINBASE_MATCH
    )
)
def test_coinbase_parsers_only_raise_malformed(msg: dict) -> None:
    for parse in (coinbase.parse_match, coinbase.parse_ticker, coinbase.parse_changes):
        try:
            parse(msg)
        except MalformedMessage:
            pass


@settings(max_examples=200, deadline=None)
@given(
    row=st.lists(json_values, max_size=8),
    agg=messages(["o", "h", "l", "c", "v", "vw", "n", "t"], {}),
)
def test_rest_row_parsers_only_raise_malformed(row: list, agg: dict) -> None:
    for parse, value in ((parse_ohlcv_row, row), (polygon_rest.parse_aggregate, agg)):
        try:
            bar = (
                parse(value, "BTC-USD", "1m", "x")
                if parse is parse_ohlcv_row
                else parse(value, "BTC-USD", "1m")
            )
        except MalformedMessage:
            continue
        assert bar.open > 0 and bar.volume >= 0


def test_adapters_import_without_django() -> None:
    code = (
        "import sys\n"
        "import marketdata.adapters.base, marketdata.adapters.polygon\n"
        "import marketdata.adapters.coinbase\n"
        "import marketdata.adapters.binance, marketdata.adapters.polygon_rest\n"
        "import marketdata.adapters.ccxt_ohlcv, marketdata.adapters.files\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django'\n"
    )
    env = {"PATH": "", "PYTHONPATH": "."}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
