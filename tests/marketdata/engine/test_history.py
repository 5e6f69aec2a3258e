"""Tests of the simulated market's vectorised historical bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.engine.aggregator import BAR_COLUMNS
from marketdata.engine.constants import DEFAULT_SYMBOLS_BY_NAME
from marketdata.engine.errors import SimulationConfigError, UnsupportedTimeframe
from marketdata.engine.events import Bar
from marketdata.engine.history import BLOCK_BARS
from marketdata.engine.quality import QualityValidator, Verdict
from marketdata.engine.simulator import SimulatedMarket

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=42, start=START)


@pytest.mark.parametrize(
    ("timeframe", "span"),
    [
        ("1s", timedelta(hours=3)),
        ("1m", timedelta(days=5)),
        ("1h", timedelta(days=200)),
        ("4h", timedelta(days=300)),
        ("1d", timedelta(days=900)),
    ],
)
def test_history_bars_satisfy_ohlc_invariants(
    market: SimulatedMarket, timeframe: str, span: timedelta
) -> None:
    start = START - span / 2 + timedelta(seconds=0.5)  # unaligned on purpose
    frame = market.history_bars(None, timeframe, start, start + span)
    assert list(frame.columns) == BAR_COLUMNS
    assert (frame["high"] >= frame[["open", "close", "low"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close", "high"]].min(axis=1)).all()
    assert (frame["low"] > 0).all()
    assert frame["vwap"].between(frame["low"], frame["high"]).all()
    assert (frame["volume"] > 0).all() and (frame["trade_count"] >= 1).all()
    seconds = pd.Timedelta(timeframe.replace("m", "min")).total_seconds()
    epoch = frame["ts"].astype("int64") // 10**9
    assert (epoch % seconds == 0).all()
    assert frame["ts"].min() >= start and frame["ts"].max() < start + span
    assert frame["ts"].is_monotonic_increasing
    assert len(frame) == 5 * int(span.total_seconds() // seconds)


def test_bars_are_continuous_and_anchored_at_base_prices(market: SimulatedMarket) -> None:
    frame = market.history_bars(None, "1m", START - timedelta(hours=5), START + timedelta(hours=5))
    for symbol, group in frame.groupby("symbol"):
        spec = DEFAULT_SYMBOLS_BY_NAME[symbol]
        assert np.allclose(group["open"].to_numpy()[1:], group["close"].to_numpy()[:-1])
        at_start = group[group["ts"] == START].iloc[0]
        assert at_start["open"] == pytest.approx(spec.base_price, abs=spec.tick_size)


def test_overlapping_requests_give_identical_bars(market: SimulatedMarket) -> None:
    a = market.history_bars("ETH-USD", "1m", START - timedelta(days=4), START + timedelta(days=1))
    b = market.history_bars(
        ["ETH-USD", "BTC-USD"], "1m", START - timedelta(days=2), START + timedelta(days=3)
    )
    assert (START - timedelta(days=4)).timestamp() // 60 // BLOCK_BARS != START.timestamp() // (
        60 * BLOCK_BARS
    )  # the requests cross block boundaries
    b_eth = b[b["symbol"] == "ETH-USD"].reset_index(drop=True)
    overlap_a = a[a["ts"] >= START - timedelta(days=2)].reset_index(drop=True)
    pd.testing.assert_frame_equal(overlap_a, b_eth.iloc[: len(overlap_a)])
    again = SimulatedMarket(seed=42, start=START).history_bars(
        "ETH-USD", "1m", START - timedelta(days=4), START + timedelta(days=1)
    )
    pd.testing.assert_frame_equal(a, again)


def test_different_seeds_give_different_history() -> None:
    a = SimulatedMarket(seed=1).history_bars("BTC-USD", "1h", START, START + timedelta(days=3))
    b = SimulatedMarket(seed=2).history_bars("BTC-USD", "1h", START, START + timedelta(days=3))
    assert not np.allclose(a["close"], b["close"])


def test_history_returns_have_the_target_correlation(market: SimulatedMarket) -> None:
    frame = market.history_bars(None, "1h", START, START + timedelta(days=400))
    closes = frame.pivot(index="ts", columns="symbol", values="close")[list(market.symbols)]
    rets = np.diff(np.log(closes.to_numpy()), axis=0)
    z = rets / rets.std(axis=0)
    calm = np.abs(z).max(axis=1) < 5
    assert np.abs(np.corrcoef(rets[calm].T) - market.correlation).max() < 0.07


def test_history_bars_pass_the_quality_validator(market: SimulatedMarket) -> None:
    frame = market.history_bars("SOL-USD", "1m", START, START + timedelta(days=2))
    validator = QualityValidator()
    verdicts = [
        validator.validate(
            Bar(
                r.symbol,
                "1m",
                r.ts.to_pydatetime(),
                r.open,
                r.high,
                r.low,
                r.close,
                r.volume,
                r.vwap,
                int(r.trade_count),
            )
        ).verdict
        for r in frame.itertuples(index=False)
    ]
    assert Verdict.QUARANTINE not in verdicts
    assert verdicts.count(Verdict.FLAG) / len(verdicts) < 0.02


def test_a_million_minute_bars_in_one_call(market: SimulatedMarket) -> None:
    frame = market.history_bars("BTC-USD", "1m", START - timedelta(minutes=1_000_000), START)
    assert len(frame) == 1_000_000


def test_history_edge_cases(market: SimulatedMarket) -> None:
    late_start = START + timedelta(minutes=1)
    empty = market.history_bars("BTC-USD", "1h", late_start, late_start + timedelta(minutes=30))
    assert empty.empty and list(empty.columns) == BAR_COLUMNS
    one = market.history_bars("BTC-USD", "1h", START, START + timedelta(minutes=30))
    assert list(one["ts"]) == [START]  # bars whose window starts in [start, end)
    with pytest.raises(SimulationConfigError):
        market.history_bars("NOPE-USD", "1h", START, START + timedelta(days=1))
    with pytest.raises(SimulationConfigError):
        market.history_bars("BTC-USD", "1h", datetime(2024, 1, 1), datetime(2024, 1, 2))
    with pytest.raises(UnsupportedTimeframe):
        market.history_bars("BTC-USD", "2h", START, START + timedelta(days=1))
