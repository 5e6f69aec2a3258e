"""Tests of the trade → bar aggregator and the bar resamplers, against pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine.aggregator import (
    BAR_COLUMNS,
    BarAggregator,
    BarResampler,
    aggregate_trades_frame,
    combine_bars,
    resample_bars,
    resample_frame,
)
from marketdata.engine.errors import UnsupportedTimeframe
from marketdata.engine.events import Bar, Trade
from marketdata.engine.simulator import SimulatedMarket

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
PANDAS_RULE = {"1s": "1s", "1m": "1min", "5m": "5min", "1h": "1h", "1d": "1D"}


def trade(sec: float, price: float, size: float = 1.0, symbol: str = "BTC-USD") -> Trade:
    return Trade(symbol, T0 + timedelta(seconds=sec), price, size, trade_id=f"{sec}-{price}")


def trades_frame(trades: list[Trade]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.to_datetime([t.ts for t in trades], utc=True),
            "symbol": [t.symbol for t in trades],
            "price": [t.price for t in trades],
            "size": [t.size for t in trades],
        }
    )


def pandas_trade_bars(trades: list[Trade], timeframe: str) -> pd.DataFrame:
    """Reference bars: pandas resample(label='left', closed='left'), empty windows dropped."""
    frames = []
    for symbol, group in trades_frame(trades).groupby("symbol"):
        g = group.set_index("ts")
        g["pv"] = g["price"] * g["size"]
        r = g.resample(PANDAS_RULE[timeframe], label="left", closed="left")
        out = pd.DataFrame(
            {
                "open": r["price"].first(),
                "high": r["price"].max(),
                "low": r["price"].min(),
                "close": r["price"].last(),
                "volume": r["size"].sum(),
                "pv": r["pv"].sum(),
                "trade_count": r["price"].count(),
            }
        )
        out = out[out["trade_count"] > 0]
        out["vwap"] = out["pv"] / out["volume"]
        frames.append(out.assign(symbol=symbol).reset_index())
    return pd.concat(frames).sort_values(["ts", "symbol"]).reset_index(drop=True)[BAR_COLUMNS]


def bars_frame(bars: list[Bar]) -> pd.DataFrame:
    rows = [
        {
            "ts": pd.Timestamp(b.ts),
            "symbol": b.symbol,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
            "vwap": b.vwap,
            "trade_count": b.trade_count,
        }
        for b in bars
    ]
    frame = pd.DataFrame(rows, columns=BAR_COLUMNS)
    return frame.sort_values(["ts", "symbol"]).reset_index(drop=True)


def assert_frames_match(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        ours.reset_index(drop=True),
        reference.reset_index(drop=True),
        check_dtype=False,
        rtol=1e-9,
        atol=1e-9,
    )


def aggregate(trades: list[Trade], timeframe: str, **kwargs: object) -> list[Bar]:
    agg = BarAggregator(timeframe, **kwargs)  # type: ignore[arg-type]
    return agg.add_many(trades) + agg.flush()


@pytest.fixture(scope="module")
def sim_trades() -> list[Trade]:
    market = SimulatedMarket(seed=11, trades_per_step=3)
    return [e for e in market.events(400) if isinstance(e, Trade)]


@pytest.mark.parametrize("timeframe", ["1s", "1m"])
def test_aggregator_matches_pandas_resample(sim_trades: list[Trade], timeframe: str) -> None:
    ours = bars_frame(aggregate(sim_trades, timeframe))
    assert_frames_match(ours, pandas_trade_bars(sim_trades, timeframe))
    assert_frames_match(ours, aggregate_trades_frame(trades_frame(sim_trades), timeframe))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 400, allow_nan=False),
            st.floats(1, 1_000),
            st.floats(0.001, 10),
            st.sampled_from(["BTC-USD", "ETH-USD"]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_aggregator_matches_pandas_for_any_ordered_trades(
    raw: list[tuple[float, float, float, str]],
) -> None:
    raw.sort(key=lambda r: r[0])
    trades = [trade(round(sec, 6), price, size, sym) for sec, price, size, sym in raw]
    ours = bars_frame(aggregate(trades, "1m"))
    assert_frames_match(ours, pandas_trade_bars(trades, "1m"))
    for b in aggregate(trades, "1s"):
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.vwap is not None and b.low - 1e-9 <= b.vwap <= b.high + 1e-9


def test_windows_are_aligned_to_utc_and_bars_close_when_time_moves_on() -> None:
    agg = BarAggregator("1m")
    assert agg.add(trade(34.789, 100.0)) == []
    assert agg.add(trade(50.0, 101.0)) == []
    closed = agg.add(trade(61.0, 102.0))
    assert [(b.ts, b.open, b.close, b.volume, b.trade_count) for b in closed] == [
        (T0, 100.0, 101.0, 2.0, 2)
    ]
    assert closed[0].ts.tzinfo is UTC and closed[0].timeframe == "1m"
    second = BarAggregator("1s")
    second.add(trade(12.345, 100.0))
    assert second.flush()[0].ts == T0 + timedelta(seconds=12)


def test_a_new_window_closes_quiet_symbols_too() -> None:
    agg = BarAggregator("1m")
    agg.add(trade(5.0, 3000.0, symbol="ETH-USD"))
    agg.add(trade(30.0, 50_000.0))
    closed = agg.add(trade(65.0, 50_010.0))
    assert sorted(b.symbol for b in closed) == ["BTC-USD", "ETH-USD"]
    assert [b.symbol for b in agg.open_bars()] == ["BTC-USD"]


def test_empty_windows_produce_no_bar() -> None:
    bars = aggregate([trade(1.0, 100.0), trade(200.0, 101.0)], "1m")
    assert [b.ts for b in bars] == [T0, T0 + timedelta(minutes=3)]


def test_trades_out_of_order_within_a_window_use_trade_time() -> None:
    bars = aggregate([trade(10.0, 100.0), trade(20.0, 105.0), trade(5.0, 95.0)], "1m")
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close) == (95.0, 105.0, 95.0, 105.0)


def test_late_trade_amends_the_closed_bar() -> None:
    agg = BarAggregator("1m", late="amend")
    agg.add(trade(10.0, 100.0, 2.0))
    (closed,) = agg.add(trade(70.0, 101.0))
    (amended,) = agg.add(trade(59.0, 110.0, 2.0))
    assert not closed.amended and amended.amended
    assert (amended.ts, amended.open, amended.high, amended.close) == (T0, 100.0, 110.0, 110.0)
    assert (amended.volume, amended.trade_count, amended.vwap) == (4.0, 2, 105.0)
    (again,) = agg.add(trade(1.0, 90.0, 4.0))  # earlier than every trade: becomes the open
    assert (again.open, again.low, again.close, again.trade_count) == (90.0, 90.0, 110.0, 3)
    assert agg.stats.late_trades == 2 and agg.stats.amended_bars == 2
    assert agg.stats.bars_emitted == 1


def test_late_trade_in_an_empty_closed_window_emits_an_amended_bar() -> None:
    agg = BarAggregator("1m")
    agg.add(trade(10.0, 100.0))
    agg.add(trade(190.0, 100.0))
    (late,) = agg.add(trade(75.0, 99.0))
    assert late.amended and late.ts == T0 + timedelta(minutes=1) and late.trade_count == 1


def test_late_trade_beyond_the_amend_horizon_is_kept_not_dropped() -> None:
    agg = BarAggregator("1m", amend_horizon=2)
    agg.add(trade(10.0, 100.0))
    agg.add(trade(600.0, 100.0))
    old = trade(20.0, 100.0)
    assert agg.add(old) == []
    assert list(agg.late) == [old]
    assert agg.stats.late_trades == 1 and agg.stats.late_kept == 1


def test_late_count_policy_counts_and_calls_back() -> None:
    seen: list[Trade] = []
    agg = BarAggregator("1m", late="count", on_late=seen.append)
    agg.add(trade(10.0, 100.0))
    agg.add(trade(70.0, 100.0))
    late = trade(30.0, 100.0)
    assert agg.add(late) == []
    assert seen == [late] and agg.stats.late_trades == 1 and agg.stats.amended_bars == 0
    kept = BarAggregator("1m", late="count")
    kept.add(trade(10.0, 100.0))
    kept.add(trade(70.0, 100.0))
    kept.add(late)
    assert list(kept.late) == [late]


def test_advance_closes_bars_by_clock_and_later_trades_are_late() -> None:
    agg = BarAggregator("1m")
    agg.add(trade(10.0, 100.0))
    assert agg.advance(T0 + timedelta(seconds=59)) == []
    (closed,) = agg.advance(T0 + timedelta(seconds=60))
    assert closed.ts == T0
    (amended,) = agg.add(trade(50.0, 101.0))
    assert amended.amended and amended.trade_count == 2


def test_flush_closes_everything_and_keeps_time() -> None:
    agg = BarAggregator("1m")
    agg.add(trade(10.0, 100.0))
    agg.add(trade(11.0, 10.0, symbol="ETH-USD"))
    assert len(agg.flush()) == 2 and agg.flush() == []
    (amended,) = agg.add(trade(12.0, 100.0))
    assert amended.amended
    assert agg.add(trade(65.0, 100.0)) == []


def test_aggregator_rejects_bad_arguments() -> None:
    with pytest.raises(UnsupportedTimeframe):
        BarAggregator("5m")
    with pytest.raises(ValueError):
        BarAggregator("1m", late="drop")  # type: ignore[arg-type]


# -- resampling ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minute_bars() -> pd.DataFrame:
    market = SimulatedMarket(symbols=["BTC-USD", "ETH-USD"], seed=5)
    start = datetime(2024, 2, 27, 22, 30, tzinfo=UTC)  # not day-aligned on purpose
    frame = market.history_bars(None, "1m", start, start + timedelta(days=3, minutes=7))
    # Drop some bars: the resamplers must cope with empty source windows.
    return frame.drop(index=frame.index[::17]).reset_index(drop=True)


def frame_to_bars(frame: pd.DataFrame, timeframe: str) -> list[Bar]:
    return [
        Bar(
            row.symbol,
            timeframe,
            row.ts.to_pydatetime(),
            row.open,
            row.high,
            row.low,
            row.close,
            row.volume,
            row.vwap,
            int(row.trade_count),
        )
        for row in frame.itertuples(index=False)
    ]


def pandas_resample_bars(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    out = []
    for symbol, group in frame.groupby("symbol"):
        g = group.set_index("ts")
        g = g.assign(pv=g["vwap"] * g["volume"])
        r = g.resample(PANDAS_RULE[timeframe], label="left", closed="left")
        res = pd.DataFrame(
            {
                "open": r["open"].first(),
                "high": r["high"].max(),
                "low": r["low"].min(),
                "close": r["close"].last(),
                "volume": r["volume"].sum(),
                "pv": r["pv"].sum(),
                "trade_count": r["trade_count"].sum(),
                "n": r["open"].count(),
            }
        )
        res = res[res["n"] > 0]
        res["vwap"] = res["pv"] / res["volume"]
        out.append(res.assign(symbol=symbol).reset_index())
    return pd.concat(out).sort_values(["ts", "symbol"]).reset_index(drop=True)[BAR_COLUMNS]


@pytest.mark.parametrize("target", ["5m", "1h", "1d"])
def test_resample_bars_matches_pandas(minute_bars: pd.DataFrame, target: str) -> None:
    reference = pandas_resample_bars(minute_bars, target)
    bars = resample_bars(frame_to_bars(minute_bars, "1m"), target)
    assert {b.timeframe for b in bars} == {target}
    assert_frames_match(bars_frame(bars), reference)
    assert_frames_match(resample_frame(minute_bars, target), reference)


def test_streaming_resampler_closes_early_and_matches_batch(minute_bars: pd.DataFrame) -> None:
    source = frame_to_bars(minute_bars.head(400), "1m")
    resampler = BarResampler("5m")
    streamed: list[Bar] = []
    for b in source:
        out = resampler.add(b)
        for done in out:
            # Emitted no later than the first source bar of a later window.
            assert done.ts + timedelta(minutes=5) <= b.ts + timedelta(minutes=1)
        streamed.extend(out)
    streamed.extend(resampler.flush())
    assert_frames_match(bars_frame(streamed), bars_frame(resample_bars(source, "5m")))


def test_resampler_emits_when_the_last_sub_bar_arrives() -> None:
    resampler = BarResampler("5m")
    for minute in range(4):
        assert resampler.add(_bar(minute, 100.0 + minute)) == []
    (done,) = resampler.add(_bar(4, 104.0))
    assert (done.ts, done.open, done.close, done.volume, done.trade_count) == (
        T0,
        100.0,
        104.0,
        5.0,
        5,
    )


def _bar(minute: int, price: float, volume: float = 1.0, **kw: object) -> Bar:
    return Bar(
        "BTC-USD",
        "1m",
        T0 + timedelta(minutes=minute),
        price,
        price + 1,
        price - 1,
        price,
        volume,
        price,
        1,
        **kw,  # type: ignore[arg-type]
    )


def test_resampler_replaces_amended_source_bars_instead_of_double_counting() -> None:
    resampler = BarResampler("5m")
    resampler.add(_bar(0, 100.0))
    resampler.add(_bar(1, 100.0))
    resampler.add(_bar(1, 100.0, volume=3.0, amended=True))
    (done,) = resampler.flush()
    assert done.volume == 4.0 and not done.amended
    (fixed,) = resampler.add(_bar(0, 100.0, volume=2.0, amended=True))
    assert fixed.amended and fixed.volume == 5.0 and fixed.ts == T0


def test_resampler_late_count_policy_and_bad_sources() -> None:
    resampler = BarResampler("5m", late="count")
    resampler.add(_bar(0, 100.0))
    resampler.add(_bar(6, 100.0))
    late = _bar(1, 100.0)
    assert resampler.add(late) == []
    assert list(resampler.late) == [late] and resampler.stats.late_trades == 1
    with pytest.raises(UnsupportedTimeframe):
        BarResampler("1m").add(_bar(0, 100.0))
    with pytest.raises(UnsupportedTimeframe):
        BarResampler("7m")
    mixed = BarResampler("1h")
    mixed.add(_bar(0, 100.0))
    with pytest.raises(UnsupportedTimeframe):
        mixed.add(Bar("BTC-USD", "5m", T0, 1, 1, 1, 1, 1))


def test_four_hour_windows_are_utc_aligned() -> None:
    start = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    bars = [Bar("X", "1h", start + timedelta(hours=h), 1, 2, 0.5, 1, 1, 1.0, 1) for h in range(6)]
    assert [b.ts.hour for b in resample_bars(bars, "4h")] == [0, 4, 8]


def test_combine_bars_without_vwap_or_volume() -> None:
    parts = [
        Bar("X", "1m", T0, 1, 2, 0.5, 1.5, 0.0, None, 0),
        Bar("X", "1m", T0 + timedelta(minutes=1), 1.5, 3, 1, 2, 2.0, None, 1),
    ]
    combined = combine_bars(parts, "X", "5m", T0)
    assert combined.vwap is None and combined.volume == 2.0 and combined.high == 3
    with pytest.raises(ValueError):
        combine_bars([], "X", "5m", T0)


def test_aggregator_then_resampler_pipeline_equals_batch(sim_trades: list[Trade]) -> None:
    # Shuffle a few trades late: amended 1m bars must flow into the 5m bars exactly once.
    trades = list(sim_trades)
    for i in range(50, len(trades) - 400, 97):
        trades.insert(i + 300, trades.pop(i))
    agg, resampler = BarAggregator("1m"), BarResampler("5m")
    latest: dict[tuple[str, datetime], Bar] = {}
    five: dict[tuple[str, datetime], Bar] = {}
    for t in trades:
        for b in agg.add(t):
            latest[(b.symbol, b.ts)] = b
            for r in resampler.add(b):
                five[(r.symbol, r.ts)] = r
    for b in agg.flush():
        latest[(b.symbol, b.ts)] = b
        for r in resampler.add(b):
            five[(r.symbol, r.ts)] = r
    for r in resampler.flush():
        five[(r.symbol, r.ts)] = r
    assert agg.stats.late_trades >= 5 and agg.stats.late_kept == 0
    assert_frames_match(bars_frame(list(latest.values())), pandas_trade_bars(sim_trades, "1m"))
    assert_frames_match(bars_frame(list(five.values())), pandas_trade_bars(sim_trades, "5m"))
