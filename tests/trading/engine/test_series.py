"""Whole-series indicators equal the incremental ones the strategies use, bit for bit."""

from __future__ import annotations

import numpy as np
import talib

from tests.backtesting.engine.helpers import walk_frame
from trading.engine.indicators import RollingMean, RollingMeanStd
from trading.engine.series import RESYNC, rolling_mean, rolling_mean_std, wilder_rsi

# Two-decimal prices around 9000 over more than two resync periods: exact ties happen.
RNG = np.random.default_rng(17)
PRICES = np.round(9000 + np.cumsum(RNG.normal(0, 3, 2 * RESYNC + 700)), 2)


def incremental(indicator, values: np.ndarray) -> list:
    return [indicator.update(float(v)) for v in values]


def test_rolling_mean_is_bit_identical_across_resyncs() -> None:
    for n in (1, 10, 30, 77):
        expected = incremental(RollingMean(n), PRICES)
        got = rolling_mean(PRICES, n)
        assert np.isnan(got[: n - 1]).all()
        assert got[n - 1 :].tolist() == expected[n - 1 :]


def test_rolling_mean_std_is_bit_identical_across_resyncs() -> None:
    for n in (2, 20, 55):
        expected = incremental(RollingMeanStd(n), PRICES)
        mean, std = rolling_mean_std(PRICES, n)
        assert mean[n - 1 :].tolist() == [e[0] for e in expected[n - 1 :]]
        assert std[n - 1 :].tolist() == [e[1] for e in expected[n - 1 :]]
        assert np.isnan(mean[: n - 1]).all() and np.isnan(std[: n - 1]).all()


def test_short_series() -> None:
    assert np.isnan(rolling_mean(PRICES[:5], 10)).all()
    mean, std = rolling_mean_std(PRICES[:5], 10)
    assert np.isnan(mean).all() and np.isnan(std).all()


def test_rsi_matches_talib() -> None:
    close = walk_frame(600)["close"].to_numpy()
    np.testing.assert_allclose(wilder_rsi(close, 14)[14:], talib.RSI(close, 14)[14:], rtol=1e-9)
    assert np.isnan(wilder_rsi(close, 14)[:14]).all()
