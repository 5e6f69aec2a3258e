"""``BarAggregator.add_batch`` equals ``add`` one by one: the same bars, amends and state."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine import aggregator_batch
from marketdata.engine.aggregator import BarAggregator
from marketdata.engine.events import Bar, Trade
from marketdata.engine.trade_batch import TradeColumns
from tests.marketdata.streams import faulty_trades, split


def aggregator_state(agg: BarAggregator) -> tuple:
    def fields(acc) -> tuple:
        return tuple(getattr(acc, name) for name in acc.__slots__)

    closed = {sym: {ts: fields(a) for ts, a in h.items()} for sym, h in agg._closed.items()}
    opened = [(sym, fields(acc)) for sym, acc in agg._open.items()]
    return opened, closed, agg._current, agg._closed_until, agg.stats, list(agg.late)


def run_both(
    trades: list[Trade], chunks: list[list[Trade]], timeframe: str, drop: float, seed: int
) -> tuple[BarAggregator, dict, BarAggregator, dict]:
    """Feed the kept trades one by one and chunk by chunk; return both and their outputs."""
    rng = random.Random(seed)
    keep = [rng.random() >= drop for _ in trades]
    one, bulk = BarAggregator(timeframe), BarAggregator(timeframe)
    expected: dict[int, list[Bar]] = {}
    for i, trade in enumerate(trades):
        if keep[i] and (bars := one.add(trade)):
            expected[i] = bars
    got: dict[int, list[Bar]] = {}
    offset = 0
    for chunk in chunks:
        positions = np.flatnonzero(keep[offset : offset + len(chunk)])
        for pos, bars in bulk.add_batch(TradeColumns.of(chunk), positions).items():
            got[offset + pos] = bars
        offset += len(chunk)
    return one, expected, bulk, got


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    timeframe=st.sampled_from(["1s", "1m"]),
    disorder=st.sampled_from([0.0, 0.0, 0.01, 0.1]),
    drop=st.sampled_from([0.0, 0.1]),
    small_group=st.sampled_from([1, 3, 64]),
)
def test_batches_equal_one_by_one(
    seed: int, timeframe: str, disorder: float, drop: float, small_group: int
) -> None:
    faults = {"out_of_order": disorder, "same_ts": 0.05}
    symbols = ("BTC-USD", "ETH-USD", "SOL-USD")
    trades = faulty_trades(seed, 500, faults, symbols=symbols, step_us=(0, 1, 9_000, 300_000))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aggregator_batch, "SMALL_GROUP", small_group)
        one, expected, bulk, got = run_both(trades, split(trades, seed, 200), timeframe, drop, seed)
    assert got == expected
    assert aggregator_state(bulk) == aggregator_state(one)
    assert bulk.flush() == one.flush()


def test_a_long_ordered_run_is_aggregated_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    trades = faulty_trades(8, 30_000, {"same_ts": 0.1}, symbols=("BTC-USD", "ETH-USD", "SOL-USD"))
    one_by_one = []
    original = BarAggregator.add
    monkeypatch.setattr(
        BarAggregator, "add", lambda self, t: one_by_one.append(t) or original(self, t)
    )
    for timeframe in ("1s", "1m"):
        one_by_one.clear()
        one = BarAggregator(timeframe)
        expected = {i: bars for i, t in enumerate(trades) if (bars := original(one, t))}
        bulk = BarAggregator(timeframe)
        got = {}
        for start in range(0, len(trades), 5_000):
            columns = TradeColumns.of(trades[start : start + 5_000])
            for pos, bars in bulk.add_batch(columns, np.arange(len(columns))).items():
                got[start + pos] = bars
        assert got == expected and aggregator_state(bulk) == aggregator_state(one)
        assert not one_by_one  # every batch took the bulk path
        assert sum(len(b) for b in got.values()) > 10


def test_late_trades_in_a_batch_amend_like_one_by_one() -> None:
    trades = faulty_trades(3, 400, {"out_of_order": 0.05}, step_us=(200_000,))
    one, expected, bulk, got = run_both(trades, [trades], "1s", 0.0, 3)
    assert got == expected and aggregator_state(bulk) == aggregator_state(one)
    assert one.stats.amended_bars > 0
