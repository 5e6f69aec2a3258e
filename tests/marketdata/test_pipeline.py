"""``MarketDataPipeline.process_batch`` gives exactly what ``process`` gives one event at a time."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.adapters.base import Malformed
from marketdata.engine.events import Bar, Quote, Trade
from marketdata.engine.quality import QualityValidator
from marketdata.pipeline import MarketDataPipeline, QualityRecord
from tests.marketdata.streams import SMALL, fault_rates, faulty_trades, split, validator_state


def counting_clock():
    """A clock that ticks once per call, so records made in a different order would differ."""
    ticks = itertools.count()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    return lambda: start + timedelta(microseconds=next(ticks))


def pipeline() -> MarketDataPipeline:
    validator = QualityValidator(default=SMALL)
    return MarketDataPipeline(source="test", validator=validator, clock=counting_clock())


def mixed_events(seed: int, faults: dict, count: int) -> list[object]:
    """Faulty trades with quotes, provider bars, unreadable trades and malformed frames mixed in."""
    rng = random.Random(seed)
    events: list[object] = []
    for trade in faulty_trades(seed, count, faults, sequences=seed % 2 == 0):
        roll = rng.random()
        if roll < 0.01:
            events.append(Quote(trade.symbol, trade.ts, trade.price, 1.0, trade.price * 1.001, 2.0))
        elif roll < 0.015:
            ts = trade.ts.replace(second=0, microsecond=0)
            p = trade.price
            events.append(Bar(trade.symbol, rng.choice(["1m", "1h"]), ts, p, p, p, p, 1.0))
        elif roll < 0.02:
            events.append(Malformed("{", "bad frame", "sim"))
        elif roll < 0.025:
            bad = rng.choice([str(trade.price), 7, None])
            events.append(Trade(trade.symbol, trade.ts, bad, trade.size, "sim", "x"))  # type: ignore[arg-type]
        elif roll < 0.03:
            events.append(Trade(trade.symbol, trade.ts.replace(tzinfo=None), 1.0, 1.0, "sim", "n"))
        events.append(trade)
    return events


def assert_same(events: list[object], chunks: list[list[object]]) -> list[object]:
    one, bulk = pipeline(), pipeline()
    expected = [out for event in events for out in one.process(event)]
    got = [out for chunk in chunks for out in bulk.process_batch(chunk)]
    assert got == expected
    assert bulk.counts == one.counts
    assert validator_state(bulk.validator) == validator_state(one.validator)
    assert bulk.flush() == one.flush()
    return got


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), faults=fault_rates, largest=st.sampled_from([40, 400]))
def test_process_batch_equals_process_one_by_one(seed: int, faults: dict, largest: int) -> None:
    events = mixed_events(seed, faults, 700)
    assert_same(events, split(events, seed, largest))


def test_a_long_batch_flags_quarantines_and_builds_bars_like_one_by_one() -> None:
    faults = {"outlier": 0.005, "volume": 0.01, "spike": 0.002, "malformed": 0.002}
    events = mixed_events(21, faults, 12_000)
    got = assert_same(events, split(events, 5, 5_000))
    kinds = {type(o) for o in got}
    assert {Trade, Bar, QualityRecord, Quote} <= kinds
    rules = {o.rule for o in got if isinstance(o, QualityRecord)}
    assert {"malformed", "price_spike", "volume_spike", "zscore_outlier"} <= rules
    assert {b.timeframe for b in got if isinstance(b, Bar)} >= {"1s", "1m", "5m"}
