"""``bars_frame`` gives back every stored timestamp exactly, whichever database reads it.

On PostgreSQL the bars come through binary COPY, where a timestamptz is int8 microseconds since
2000-01-01 UTC, shifted to the Unix epoch in numpy: times before 2000, with microseconds, and
far in the future must come back to the microsecond (SQLite reads them as text; same answer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from marketdata.models import Bar
from marketdata.selectors import bars_frame
from tests.factories import SymbolFactory

MOMENTS = [
    datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # just before PostgreSQL's epoch
    datetime(2000, 1, 1, tzinfo=UTC),  # its epoch: zero on the wire
    datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 34, 56, 789_012, tzinfo=UTC),
    datetime(2101, 3, 1, 0, 0, 1, tzinfo=UTC),
]


@pytest.mark.django_db
def test_bars_frame_keeps_each_timestamp_to_the_microsecond():
    symbol = SymbolFactory(name="BTC-USD")
    Bar.objects.bulk_create(
        Bar(symbol=symbol, timeframe="1s", ts=ts, open=1.0, high=2.0, low=0.5, close=1.5)
        for ts in MOMENTS
    )
    frame = bars_frame(
        symbol="BTC-USD",
        timeframe="1s",
        start=MOMENTS[0] - timedelta(seconds=1),
        end=MOMENTS[-1] + timedelta(seconds=1),
    )
    assert list(frame.index) == [pd.Timestamp(ts) for ts in MOMENTS]
    assert str(frame.index.tz) == "UTC"


@pytest.mark.django_db
def test_bars_frame_reads_a_range_larger_than_one_chunk_whole_and_in_order(monkeypatch):
    # PostgreSQL reads the range in chunks of PACKED_CHUNK_ROWS bars, each after the last bar
    # of the one before: 2-bar chunks over 7 bars (and over exactly 6) must lose or repeat none.
    import marketdata.selectors as selectors

    monkeypatch.setattr(selectors, "PACKED_CHUNK_ROWS", 2)
    symbol = SymbolFactory(name="ETH-USD")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    Bar.objects.bulk_create(
        Bar(symbol=symbol, timeframe="1m", ts=start + timedelta(minutes=n), open=1.0 + n,
            high=2.0 + n, low=0.5, close=1.5 + n, vwap=None if n % 2 else 1.2 + n, trade_count=n)
        for n in range(7)
    )  # fmt: skip
    for count in (7, 6):
        frame = bars_frame(
            symbol="ETH-USD", timeframe="1m", start=start, end=start + timedelta(minutes=count)
        )
        assert list(frame.index) == [
            pd.Timestamp(start + timedelta(minutes=n)) for n in range(count)
        ]
        assert frame["open"].tolist() == [1.0 + n for n in range(count)]
        assert frame["trade_count"].tolist() == list(range(count))
        assert frame["vwap"].isna().tolist() == [bool(n % 2) for n in range(count)]


def _store_minutes(name: str, start: datetime, count: int) -> None:
    symbol = SymbolFactory(name=name)
    Bar.objects.bulk_create(
        Bar(symbol=symbol, timeframe="1m", ts=start + timedelta(minutes=n), open=1.0 + n,
            high=2.0 + n, low=0.5, close=1.5 + n, trade_count=n)
        for n in range(count)
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the prefetch reads on a connection of its own
def test_a_prefetched_read_is_taken_once_and_equals_a_plain_read():
    import marketdata.selectors as selectors
    from marketdata.selectors import bars_prefetch

    start = datetime(2024, 1, 1, tzinfo=UTC)
    _store_minutes("SOL-USD", start, 5)
    args = {"symbol": "SOL-USD", "timeframe": "1m", "start": start,
            "end": start + timedelta(minutes=5)}  # fmt: skip
    plain = bars_frame(**args)
    bars_prefetch(**args)
    if connection_is_postgresql():
        (prefetch,) = selectors._PREFETCHED.values()
        assert len(prefetch.result()) == 5 * 64  # five packed records, read on its own
    prefetched = bars_frame(**args)
    assert selectors._PREFETCHED == {}  # taken by the first read
    pd.testing.assert_frame_equal(prefetched, plain)
    assert len(plain) == 5


@pytest.mark.django_db(transaction=True)
def test_a_prefetch_that_found_nothing_is_read_again():
    # The sim source stores the bars a prefetch started before them could not see.
    from marketdata.selectors import bars_prefetch

    start = datetime(2024, 1, 1, tzinfo=UTC)
    args = {"symbol": "AVAX-USD", "timeframe": "1m", "start": start,
            "end": start + timedelta(minutes=3)}  # fmt: skip
    bars_prefetch(**args)
    _store_minutes("AVAX-USD", start, 3)
    assert bars_frame(**args)["open"].tolist() == [1.0, 2.0, 3.0]


def connection_is_postgresql() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


@pytest.mark.django_db
def test_a_refused_backtest_leaves_no_prefetch_behind():
    # A later read in the same process must see the bars as they are then, not a stale read.
    from django.core.management import call_command
    from django.core.management.base import CommandError

    import marketdata.selectors as selectors

    SymbolFactory(name="BTC-USD")
    with pytest.raises(CommandError):
        call_command(
            "backtest", "--strategy", "sma_cross", "--param", "fast=oops", "--symbols", "BTC-USD",
            "--timeframe", "1m", "--start", "2024-01-01", "--end", "2024-01-02", "--no-risk",
        )  # fmt: skip
    assert selectors._PREFETCHED == {}
