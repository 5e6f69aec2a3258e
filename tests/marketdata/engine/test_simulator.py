"""Tests of the simulated market: determinism, statistics, book/trade consistency, pacing."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine.constants import DEFAULT_SYMBOLS, DEFAULT_SYMBOLS_BY_NAME, SymbolSpec
from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.events import BookSnapshot, Quote, SentimentReading, Side, Trade
from marketdata.engine.simulator import SimulatedMarket

MINUTE = timedelta(minutes=1)


def quotes_by_symbol(events) -> dict[str, list[Quote]]:
    out: dict[str, list[Quote]] = defaultdict(list)
    for e in events:
        if isinstance(e, Quote):
            out[e.symbol].append(e)
    return out


def test_default_symbols_match_the_brief() -> None:
    expected = {
        "BTC-USD": (50_000, 1_000_000),
        "ETH-USD": (3_000, 500_000),
        "SOL-USD": (100, 100_000),
        "MATIC-USD": (0.80, 50_000),
        "AVAX-USD": (35, 75_000),
    }
    assert {s.symbol: (s.base_price, s.daily_volume) for s in DEFAULT_SYMBOLS} == expected
    assert SimulatedMarket().symbols == tuple(expected)


def test_same_seed_gives_identical_events_however_sliced() -> None:
    a = list(SimulatedMarket(seed=3).events(300))
    b_market = SimulatedMarket(seed=3)
    b = list(b_market.events(100)) + list(b_market.events(1)) + list(b_market.events(199))
    assert a == b
    assert b_market.now == datetime(2024, 1, 1, 0, 5, tzinfo=UTC)


def test_different_seeds_differ() -> None:
    a = [e for e in SimulatedMarket(seed=1).events(20) if isinstance(e, Trade)]
    b = [e for e in SimulatedMarket(seed=2).events(20) if isinstance(e, Trade)]
    assert [t.price for t in a] != [t.price for t in b]


def test_events_are_ordered_and_prices_start_at_base() -> None:
    start = datetime(2025, 6, 1, tzinfo=UTC)
    events = list(SimulatedMarket(start=start).events(200))
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps) and stamps[0] == start
    opening = {e.symbol: e.mid for e in events[:15] if isinstance(e, Quote)}
    for symbol, mid in opening.items():
        assert mid == pytest.approx(DEFAULT_SYMBOLS_BY_NAME[symbol].base_price, rel=5e-4)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), minutes=st.booleans())
def test_books_are_never_crossed_and_trades_print_at_the_touch(seed: int, minutes: bool) -> None:
    step = MINUTE if minutes else timedelta(seconds=1)
    market = SimulatedMarket(seed=seed, step=step, trades_per_step=4)
    book: dict[str, BookSnapshot] = {}
    taken: dict[tuple[str, Side], float] = defaultdict(float)
    n_trades = 0
    for e in market.events(60):
        if isinstance(e, BookSnapshot):
            _check_book(e, DEFAULT_SYMBOLS_BY_NAME[e.symbol])
            book[e.symbol] = e
            taken[(e.symbol, Side.BUY)] = taken[(e.symbol, Side.SELL)] = 0.0
        elif isinstance(e, Trade):
            n_trades += 1
            snap = book[e.symbol]
            assert snap.ts < e.ts < snap.ts + step
            touch = snap.asks[0] if e.side is Side.BUY else snap.bids[0]
            assert e.price == touch[0]
            taken[(e.symbol, e.side)] += e.size
            assert taken[(e.symbol, e.side)] <= touch[1] + 1e-9
            lot = DEFAULT_SYMBOLS_BY_NAME[e.symbol].lot_size
            assert e.size >= lot and _on_grid(e.size, lot)
    assert n_trades > 0


def _check_book(snap: BookSnapshot, spec: SymbolSpec) -> None:
    bids = [p for p, _ in snap.bids]
    asks = [p for p, _ in snap.asks]
    assert len(bids) == len(asks) == 10
    assert bids[0] < asks[0]
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == 10
    assert asks == sorted(asks) and len(set(asks)) == 10
    assert all(s > 0 for _, s in snap.bids + snap.asks)
    assert all(_on_grid(p, spec.tick_size) for p in bids + asks)


def _on_grid(value: float, increment: float) -> bool:
    return abs(value / increment - round(value / increment)) < 1e-6


def test_quotes_match_the_book_top_and_spreads_are_a_few_bps() -> None:
    events = list(SimulatedMarket(seed=9).events(300))
    books = {(e.symbol, e.ts): e for e in events if isinstance(e, BookSnapshot)}
    spreads = defaultdict(list)
    for q in (e for e in events if isinstance(e, Quote)):
        snap = books[(q.symbol, q.ts)]
        assert (q.bid, q.bid_size, q.ask, q.ask_size) == (*snap.bids[0], *snap.asks[0])
        spreads[q.symbol].append((q.ask - q.bid) / q.mid * 1e4)
    for symbol, values in spreads.items():
        tick_bps = (
            DEFAULT_SYMBOLS_BY_NAME[symbol].tick_size
            / DEFAULT_SYMBOLS_BY_NAME[symbol].base_price
            * 1e4
        )
        assert 0.3 < np.median(values) < 10 + 2 * tick_bps


@pytest.fixture(scope="module")
def minute_market_events() -> list:
    market = SimulatedMarket(
        seed=21, step=MINUTE, trades_per_step=1, book_every=10**9, sentiment_every=1
    )
    return list(market.events(6000))


def test_return_correlations_are_close_to_target(minute_market_events: list) -> None:
    market = SimulatedMarket(seed=21)
    quotes = quotes_by_symbol(minute_market_events)
    rets = np.array([np.diff(np.log([q.mid for q in quotes[s]])) for s in market.symbols]).T
    z = rets / rets.std(axis=0)
    calm = np.abs(z).max(axis=1) < 5  # the rare market-wide jumps are not diffusion
    sample = np.corrcoef(rets[calm].T)
    assert np.abs(sample - market.correlation).max() < 0.07
    assert 0.6 <= market.correlation[np.triu_indices(5, 1)].min()


def test_spreads_widen_when_volatility_is_high(minute_market_events: list) -> None:
    quotes = quotes_by_symbol(minute_market_events)["BTC-USD"]
    spread = np.array([(q.ask - q.bid) / q.mid for q in quotes])[1:]
    abs_ret = np.abs(np.diff(np.log([q.mid for q in quotes])))
    wide = spread > np.quantile(spread, 0.9)
    narrow = spread < np.quantile(spread, 0.5)
    assert abs_ret[wide].mean() > 1.5 * abs_ret[narrow].mean()


def test_sentiment_is_bounded_and_mean_reverting(minute_market_events: list) -> None:
    readings = [e for e in minute_market_events if isinstance(e, SentimentReading)]
    assert len(readings) == 6000 * 5
    scores = np.array([r.score for r in readings if r.symbol == "ETH-USD"])
    assert np.all(np.abs(scores) <= 1.0)
    latent = np.arctanh(np.clip(scores, -0.999999, 0.999999))
    slope = np.polyfit(latent[:-1], np.diff(latent), 1)[0]
    expected = math.exp(-2.0 / 60) - 1  # OU decay per one-minute step
    assert slope == pytest.approx(expected, rel=0.5) and slope < 0
    assert abs(latent.mean()) < 0.3
    labels = {r.label for r in readings}
    assert labels == {"bullish", "bearish", "neutral"}
    assert all(0.0 <= r.confidence <= 1.0 for r in readings)


def test_traded_volume_follows_daily_volume(minute_market_events: list) -> None:
    volume = defaultdict(float)
    for e in minute_market_events:
        if isinstance(e, Trade):
            volume[e.symbol] += e.size
    days = 6000 / 1440
    for spec in DEFAULT_SYMBOLS:
        assert volume[spec.symbol] / days == pytest.approx(spec.daily_volume, rel=0.3)


def test_aggressor_side_leans_with_the_move() -> None:
    market = SimulatedMarket(seed=4, trades_per_step=10)
    mids: dict[str, float] = {}
    buys_up, buys_down = [], []
    pending: list[Trade] = []
    for e in market.events(1500):
        if isinstance(e, Quote) and e.symbol == "SOL-USD":
            if "SOL-USD" in mids:
                up = e.mid > mids["SOL-USD"]
                (buys_up if up else buys_down).extend(t.side is Side.BUY for t in pending)
            mids["SOL-USD"] = e.mid
            pending = []
        elif isinstance(e, Trade) and e.symbol == "SOL-USD":
            pending.append(e)
    assert np.mean(buys_up) > 0.55 > 0.45 > np.mean(buys_down)


def test_trade_ids_and_sequences_are_consecutive_per_symbol() -> None:
    seqs = defaultdict(list)
    for e in SimulatedMarket(seed=8).events(100):
        if isinstance(e, Trade):
            seqs[e.symbol].append((e.sequence, e.trade_id))
    for values in seqs.values():
        assert [s for s, _ in values] == list(range(1, len(values) + 1))
        prefix = values[0][1].removesuffix("1")
        assert [i for _, i in values] == [f"{prefix}{s}" for s, _ in values]


def test_custom_symbols_and_configuration_errors() -> None:
    doge = SymbolSpec("DOGE-USD", "DOGE", "USD", 0.1, 1e6, 0.00001, 1.0, 5.0, 1.0)
    market = SimulatedMarket(symbols=["BTC-USD", doge], seed=1)
    assert market.symbols == ("BTC-USD", "DOGE-USD")
    assert market.correlation[0, 1] == pytest.approx(0.7)
    with pytest.raises(SimulationConfigError):
        SimulatedMarket(symbols=["NOPE-USD"])
    with pytest.raises(SimulationConfigError):
        SimulatedMarket(start=datetime(2024, 1, 1))
    with pytest.raises(SimulationConfigError):
        SimulatedMarket(step=timedelta(0))
    with pytest.raises(SimulationConfigError):
        SimulatedMarket(
            symbols=["BTC-USD", "ETH-USD", "SOL-USD"],
            correlations={
                frozenset({"BTC-USD", "ETH-USD"}): 0.99,
                frozenset({"BTC-USD", "SOL-USD"}): 0.99,
                frozenset({"ETH-USD", "SOL-USD"}): -0.9,
            },
        )


# -- real-time pacing --------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when the fake sleep is awaited."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_stream_paces_events_at_speed() -> None:
    clock = FakeClock()
    market = SimulatedMarket(seed=5)
    streamed = [e async for e in market.stream(30, speed=10.0, clock=clock, sleep=clock.sleep)]
    assert streamed == list(SimulatedMarket(seed=5).events(30))
    span = (streamed[-1].ts - streamed[0].ts).total_seconds()
    assert clock.now - 1_000.0 == pytest.approx(span / 10.0, abs=1e-6)
    assert all(s > 0 for s in clock.sleeps)


async def test_stream_unpaced_never_waits_but_yields_to_the_loop() -> None:
    clock = FakeClock()
    market = SimulatedMarket(seed=5)
    count = 0
    async for _ in market.stream(20, speed=math.inf, clock=clock, sleep=clock.sleep):
        count += 1
    assert count > 0 and clock.now == 1_000.0
    assert clock.sleeps and set(clock.sleeps) == {0}


async def test_stream_forever_can_be_stopped_and_rejects_negative_speed() -> None:
    market = SimulatedMarket(seed=5)
    stream = market.stream(None, speed=0)
    events = []
    async for e in stream:
        events.append(e)
        if len(events) == 700:
            break
    await stream.aclose()
    assert len(events) == 700
    with pytest.raises(SimulationConfigError):
        async for _ in SimulatedMarket().stream(1, speed=-1):
            pass
