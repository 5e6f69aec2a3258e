"""The validator's duplicate memory is small, reached at once and flat, and still catches replays.

A soak at 50 symbols grew by ~1 MB per stream while the old set + FIFO of 10,000 boxed ids and
bar times filled (70-80 minutes for 1 s bars). Numbered ids and bar times now live in a fixed
ring of ``duplicate_memory`` 64-bit numbers per stream, allocated with the first event.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

from marketdata.engine.events import Bar, Side, Trade
from marketdata.engine.quality import QualityRule, QualityThresholds, QualityValidator, Verdict
from marketdata.engine.trade_batch import TradeColumns

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def trade(n: int, trade_id: str | None = None, symbol: str = "BTC-USD") -> Trade:
    ts = T0 + timedelta(milliseconds=n)
    price = 100.0 + (n % 7) * 0.01
    return Trade(symbol, ts, price, 1.0, "sim", str(n) if trade_id is None else trade_id, Side.BUY)


def one_second_bar(n: int) -> Bar:
    return Bar("BTC-USD", "1s", T0 + n * SECOND, 100.0, 100.5, 99.5, 100.0, 5.0)


def grown_bytes(feed, first: range, second: range) -> int:
    """Return the bytes still allocated after feeding ``second``, compared to after ``first``."""
    for n in first:
        feed(n)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in second:
            feed(n)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def test_trade_id_memory_is_flat_from_the_first_trades() -> None:
    v = QualityValidator()
    # 2,000 trades in, 40,000 more: the old FIFO grew ~1 MB over the first 10,000 ids.
    grown = grown_bytes(lambda n: v.validate_trade(trade(n)), range(1, 2_001), range(2_001, 42_001))
    assert grown < 32_000, f"duplicate memory grew by {grown} bytes"
    series = v._series[("t", "sim", "BTC-USD")]
    assert len(series.id_ring) == 10_000 and not series.ids and not series.id_fifo


def test_bar_time_memory_is_flat_from_the_first_bars() -> None:
    v = QualityValidator()
    grown = grown_bytes(lambda n: v.validate_bar(one_second_bar(n)), range(500), range(500, 20_500))
    assert grown < 32_000, f"bar-time memory grew by {grown} bytes"
    series = v._series[("b", "sim", "BTC-USD", "1s")]
    assert len(series.id_ring) == 10_000 and not series.ids


def test_a_replayed_trade_within_memory_is_quarantined_and_counted() -> None:
    v = QualityValidator()
    for n in range(1, 30_001):
        assert v.validate_trade(trade(n)).verdict is not Verdict.QUARANTINE
    # A reconnect replays the last 9,999 trades: every one is caught.
    replayed = [v.validate_trade(trade(n)) for n in range(20_002, 30_001)]
    assert all(r.quarantined and r.findings[0].rule is QualityRule.DUPLICATE for r in replayed)
    assert v.rule_counts["duplicate"] == 9_999
    assert v.validate_trade(trade(30_001)).verdict is not Verdict.QUARANTINE


def test_a_replay_in_a_batch_is_caught_like_one_by_one() -> None:
    v, w = QualityValidator(), QualityValidator()
    fresh = [trade(n) for n in range(1, 3_001)]
    run = fresh + [trade(n) for n in range(2_500, 2_600)] + [trade(n) for n in range(3_001, 3_500)]
    got = v.validate_trades(TradeColumns.of(run))
    expected = [w.validate_trade(t) for t in run]
    assert got == expected
    assert [r.quarantined for r in got] == [False] * 3_000 + [True] * 100 + [False] * 499


def test_oldest_numbered_ids_are_forgotten_after_duplicate_memory_newer_ones() -> None:
    v = QualityValidator(default=QualityThresholds(duplicate_memory=3))
    for n in (1, 2, 3, 4):
        v.validate_trade(trade(n))
    assert v.validate_trade(trade(4)).quarantined and v.validate_trade(trade(2)).quarantined
    assert not v.validate_trade(trade(1)).quarantined  # pushed out by id 4


def test_ids_that_are_not_one_numbered_series_are_remembered_as_they_are() -> None:
    v = QualityValidator()
    ids = ["sim-7", "sim-007", "7", "other-7", "abc", "123456789012345678901234", "sim-8"]
    for n, trade_id in enumerate(ids):
        assert not v.validate_trade(trade(n, trade_id)).quarantined, trade_id
    for n, trade_id in enumerate(ids):
        again = v.validate_trade(trade(len(ids) + n, trade_id))
        assert again.quarantined and again.findings[0].rule is QualityRule.DUPLICATE, trade_id
    series = v._series[("t", "sim", "BTC-USD")]
    assert series.id_prefix == "sim-" and len(series.ids) == 5  # "sim-007" is not "sim-7"


def test_an_older_bar_is_a_duplicate_when_seen_and_out_of_order_when_not() -> None:
    v = QualityValidator()
    for n in (0, 1, 2, 4, 5):
        v.validate_bar(one_second_bar(n))
    replay = v.validate_bar(one_second_bar(1))
    assert replay.quarantined and replay.findings[0].rule is QualityRule.DUPLICATE
    late = v.validate_bar(one_second_bar(3))
    assert late.flagged and late.findings[0].rule is QualityRule.OUT_OF_ORDER
    assert v.validate_bar(one_second_bar(3)).quarantined  # the late bar is remembered too
    off_grid = Bar("BTC-USD", "1s", T0 + 6.5 * SECOND, 100.0, 100.5, 99.5, 100.0, 5.0)
    assert not v.validate_bar(off_grid).quarantined
    assert v.validate_bar(off_grid).quarantined
