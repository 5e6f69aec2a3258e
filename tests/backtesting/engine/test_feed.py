"""The backtest's bar feed builds exactly the bars and timestamps the plain constructors give."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from backtesting.engine.feed import (
    BUILD_BAR,
    bar_builder,
    bar_events,
    bar_pairs,
    bars_and_ends,
    datetimes,
    values,
)
from backtesting.engine.result import to_datetime
from backtesting.engine.runner import prepare_bars
from marketdata.engine.events import Bar
from tests.backtesting.engine.helpers import sim_frame, walk_frame


def test_the_fast_builder_makes_genuine_frozen_bars() -> None:
    assert BUILD_BAR is not Bar  # CPython accepts the twin layout here
    args = ("ETH-USD", "5m", to_datetime(1_700_000_000_000_000_000), 1.5, 2.0, 1.0, 1.75, 9.0)
    built, plain = BUILD_BAR(*args), Bar(*args)
    assert type(built) is Bar and built == plain and hash(built) == hash(plain)
    assert repr(built) == repr(plain) and dataclasses.asdict(built) == dataclasses.asdict(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.close = 3.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.close  # type: ignore[misc]
    assert (built.vwap, built.trade_count, built.venue, built.amended) == (None, 0, "sim", False)
    assert dataclasses.replace(built, close=3.0) == dataclasses.replace(plain, close=3.0)


def test_the_builder_falls_back_to_the_constructor_when_bar_changes(monkeypatch) -> None:
    import backtesting.engine.feed as feed

    @dataclasses.dataclass(frozen=True)  # no slots: the layout cannot be copied
    class Unslotted:
        symbol: str
        timeframe: str
        ts: object
        open: float
        high: float
        low: float
        close: float
        volume: float

    monkeypatch.setattr(feed, "Bar", Unslotted)
    assert bar_builder() is Unslotted


@pytest.mark.parametrize(
    "stamps",
    [
        [],
        [0],
        np.arange(5) * 60_000_000_000 + 1_704_067_200_000_000_000,
        [1_704_067_200_000_000_000, 1_704_067_200_000_000_000, 1_704_067_260_000_000_000],
        [1_704_067_200_000_000_999, 1_704_067_260_123_456_789, 1_704_070_000_000_000_001],
    ],
    ids=["empty", "one", "regular", "two symbols a stamp", "irregular, nanoseconds"],
)
def test_datetimes_equal_to_datetime_of_each_stamp(stamps) -> None:
    ts = np.asarray(stamps, dtype=np.int64)
    assert list(datetimes(ts)) == [to_datetime(int(t)) for t in ts.tolist()]


@pytest.mark.parametrize("multi", [False, True])
def test_bar_events_are_the_rows_as_bars(multi: bool) -> None:
    frame = sim_frame(300, ("BTC-USD", "ETH-USD")) if multi else walk_frame(300)
    data = prepare_bars(frame)
    expected = [
        Bar(s, data.timeframe, to_datetime(t), o, h, lo, c, v)
        for s, t, o, h, lo, c, v in zip(
            data.symbol.tolist(),
            data.ts.tolist(),
            data.open.tolist(),
            data.high.tolist(),
            data.low.tolist(),
            data.close.tolist(),
            data.volume.tolist(),
            strict=True,
        )
    ]
    assert list(bar_events(data)) == expected


@pytest.mark.parametrize("n", [1, 2, 300, 8192, 8193, 20_000])
def test_columns_read_a_chunk_at_a_time_give_every_value(n: int) -> None:
    rng = np.random.default_rng(n)
    column = rng.normal(100.0, 5.0, n)
    names = np.asarray([f"S{k % 7}" for k in range(n)], dtype=object)
    assert list(values(column)) == column.tolist()
    assert list(values(names)) == names.tolist()
    assert list(values(column, chunk=3)) == column.tolist()


def _case_bars(case: str, hole: int):
    """Return the prepared bars of ``case``: a regular minute grid, with gaps, two symbols a
    stamp, one bar, or five-minute bars (``... with a hole``: five-minute bar ``hole`` dropped)."""
    if case == "two symbols":
        frame = sim_frame(120, ("BTC-USD", "ETH-USD"))
    else:
        frame = walk_frame(1 if case == "one bar" else 240)
        if case == "gaps":
            frame = frame.drop(index=[5, 6, 100]).reset_index(drop=True)
        if case.startswith("five-minute"):
            frame = frame.iloc[::5].reset_index(drop=True)
        if case.endswith("hole"):
            frame = frame.drop(index=[hole]).reset_index(drop=True)
    return prepare_bars(frame, "5m" if case.startswith("five-minute") else "1m")


@pytest.mark.parametrize(
    "case", ["regular", "gaps", "two symbols", "one bar", "five-minute with a hole"]
)
def test_bars_and_ends_give_each_bar_and_its_end(case: str) -> None:
    """A bar's end is its start plus the timeframe, whether it is shared with the next bar's
    start (a regular grid) or computed (gaps, several symbols a stamp)."""
    data = _case_bars(case, hole=10)  # the 50th minute
    bars, ends = bars_and_ends(data)
    got_bars, got_ends = list(bars), list(ends)
    assert got_bars == list(bar_events(data))
    length = timedelta(minutes=5 if case.startswith("five-minute") else 1)
    assert got_ends == [bar.ts + length for bar in got_bars]
    assert all(end.tzinfo is not None for end in got_ends)


@pytest.mark.parametrize(
    "case", ["regular", "gaps", "two symbols", "one bar", "five-minute with a hole", "five-minute"]
)
@pytest.mark.parametrize("chunk", [1, 7, 8192])
def test_bar_pairs_give_the_bars_and_ends_of_bars_and_ends(case: str, chunk: int) -> None:
    """One generator on a regular grid (built in place), the two iterators elsewhere: the same
    genuine bars and the same aware ends, across chunk boundaries."""
    data = _case_bars(case, hole=20)
    bars, ends = bars_and_ends(data)
    expected = list(zip(bars, ends, strict=True))
    got = list(bar_pairs(data, chunk=chunk))
    assert got == expected
    assert all(type(bar) is Bar for bar, _ in got)
    assert [(bar.ts.tzinfo, end.tzinfo) for bar, end in got] == [
        (bar.ts.tzinfo, end.tzinfo) for bar, end in expected
    ]
    assert [dataclasses.asdict(bar) for bar, _ in got] == [
        dataclasses.asdict(bar) for bar, _ in expected
    ]


def test_bar_pairs_take_the_general_path_when_bar_changes(monkeypatch) -> None:
    import backtesting.engine.feed as feed

    data = prepare_bars(walk_frame(50))
    expected = list(feed.bar_pairs(data))
    assert feed._GRID_TWIN is not None  # the grid generator runs here
    monkeypatch.setattr(feed, "_GRID_DEFAULTS", (*feed._GRID_DEFAULTS[:-1], ("amended", 0)))
    assert feed._grid_twin() is None  # a default of another type: not what Bar holds
    monkeypatch.setattr(feed, "_GRID_TWIN", None)
    assert list(feed.bar_pairs(data)) == expected
