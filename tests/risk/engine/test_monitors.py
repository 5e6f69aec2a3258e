"""Risk monitors against closed forms (normal quantiles) and hand-computed series."""

from __future__ import annotations

import math
from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.engine.errors import InsufficientDataError, RiskInputError
from risk.engine.monitors import (
    drawdown_series,
    drawdown_stats,
    exposure_by_symbol,
    gaussian_cvar,
    gaussian_var,
    historical_cvar,
    historical_var,
    parametric_cvar,
    parametric_var,
    portfolio_pnl,
    rolling_sharpe,
    rolling_sortino,
    sharpe_ratio,
    sortino_ratio,
    var_report,
)
from trading.engine.hooks import PositionView

Z95, Z99 = 1.6448536269514722, 2.3263478740408408
ES95, ES99 = 2.0627128075074257, 2.665214220345806  # φ(z_c) / (1 − c)


def _hundred_returns() -> np.ndarray:
    """Return −0.50, −0.49, …, 0.49 in a fixed shuffled order."""
    values = np.arange(-50, 50) / 100.0
    np.random.default_rng(7).shuffle(values)
    return values


@pytest.mark.parametrize(
    ("confidence", "var", "cvar"),
    [
        (0.95, 0.46, 0.48),  # k = 5 worst: −0.50 … −0.46
        (0.99, 0.50, 0.50),  # k = 1
        (0.90, 0.41, 0.455),  # k = 10: −0.50 … −0.41
    ],
)
def test_historical_var_cvar_order_statistics(confidence: float, var: float, cvar: float) -> None:
    returns = _hundred_returns()
    assert historical_var(returns, confidence) == pytest.approx(var)
    assert historical_cvar(returns, confidence) == pytest.approx(cvar)


def test_historical_var_small_sample_and_decimal_input() -> None:
    returns = [D("0.01"), D("-0.02"), D("0.03"), D("-0.04"), D("0.05")]
    # n = 5, 95 %: k = ceil(0.25) = 1 -> the worst return
    assert historical_var(returns) == pytest.approx(0.04)
    assert historical_cvar(returns, 0.6) == pytest.approx(0.03)  # k = 2: mean(−0.04, −0.02)


def test_historical_var_is_negative_when_tail_is_a_gain() -> None:
    assert historical_var([0.01, 0.02, 0.03]) == pytest.approx(-0.01)


@pytest.mark.parametrize(
    ("mean", "std", "confidence", "var", "cvar"),
    [
        (0.0, 1.0, 0.95, Z95, ES95),
        (0.0, 1.0, 0.99, Z99, ES99),
        (0.001, 0.02, 0.95, 0.02 * Z95 - 0.001, 0.02 * ES95 - 0.001),
        (-0.002, 0.03, 0.99, 0.03 * Z99 + 0.002, 0.03 * ES99 + 0.002),
    ],
)
def test_gaussian_var_cvar_closed_form(
    mean: float, std: float, confidence: float, var: float, cvar: float
) -> None:
    assert gaussian_var(mean, std, confidence) == pytest.approx(var, rel=1e-12)
    assert gaussian_cvar(mean, std, confidence) == pytest.approx(cvar, rel=1e-12)


def test_parametric_var_estimates_moments() -> None:
    returns = [0.02, -0.02, 0.02, -0.02, 0.0]  # mean 0, sample σ 0.02
    assert parametric_var(returns) == pytest.approx(0.02 * Z95)
    assert parametric_cvar(returns, 0.99) == pytest.approx(0.02 * ES99)


def test_historical_converges_to_gaussian_on_a_large_normal_sample() -> None:
    sample = np.random.default_rng(42).standard_normal(200_000)
    assert historical_var(sample, 0.99) == pytest.approx(Z99, abs=0.03)
    assert historical_cvar(sample, 0.95) == pytest.approx(ES95, abs=0.02)


def test_var_report_fields() -> None:
    returns = _hundred_returns()
    report = var_report(returns)
    assert report.historical_var_95 == pytest.approx(0.46)
    assert report.historical_cvar_99 == pytest.approx(0.50)
    std = float(np.std(returns, ddof=1))
    mean = float(np.mean(returns))
    assert report.parametric_var_99 == pytest.approx(std * Z99 - mean)
    assert report.parametric_cvar_95 == pytest.approx(std * ES95 - mean)


def test_portfolio_pnl_aligns_on_most_recent_returns() -> None:
    exposures = {"A": D("1000"), "B": D("-500"), "C": D("0")}
    returns = {"A": [0.01, -0.02, 0.03], "B": [0.5, 0.02, -0.01, 0.04]}
    pnl = portfolio_pnl(exposures, returns)
    np.testing.assert_allclose(pnl, [0.0, -15.0, 10.0], atol=1e-9)  # BLAS may fuse multiply-adds
    assert historical_var(pnl) == pytest.approx(15.0)  # money VaR of today's book
    with pytest.raises(InsufficientDataError):
        portfolio_pnl({"Z": 1.0}, returns)
    assert portfolio_pnl({}, returns).size == 0


def test_drawdown_hand_computed() -> None:
    equity = [100, 120, 90, 110, 130, 117]
    np.testing.assert_allclose(
        drawdown_series(equity), [0, 0, 0.25, 1 - 110 / 120, 0, 0.1], atol=1e-12
    )
    stats = drawdown_stats([D(e) for e in equity])
    assert stats.maximum == pytest.approx(0.25)
    assert stats.current == pytest.approx(0.1)
    assert (stats.peak, stats.max_peak_index, stats.max_trough_index) == (130.0, 1, 2)


def test_drawdown_of_monotone_curve_is_zero() -> None:
    stats = drawdown_stats([1, 2, 3])
    assert (stats.current, stats.maximum) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("returns", "ppy", "rf", "expected"),
    [
        ([0.01, 0.02, 0.03], 1, 0.0, 2.0),  # mean 0.02 / σ 0.01
        ([0.01, 0.02, 0.03], 4, 0.0, 4.0),  # × √4
        ([0.01, 0.02, 0.03], 1, 0.01, 1.0),  # excess mean 0.01 / σ 0.01
    ],
)
def test_sharpe_ratio(returns: list[float], ppy: float, rf: float, expected: float) -> None:
    assert sharpe_ratio(returns, ppy, rf) == pytest.approx(expected)


def test_sortino_ratio_hand_computed() -> None:
    returns = [0.02, -0.01, 0.03, -0.02]
    # mean 0.005; downside dev √((0.0001 + 0.0004) / 4) = √0.000125
    assert sortino_ratio(returns) == pytest.approx(0.005 / math.sqrt(0.000125))
    assert sortino_ratio(returns, 4) == pytest.approx(2 * 0.005 / math.sqrt(0.000125))


def test_rolling_sharpe_and_sortino_windows() -> None:
    returns = [0.01, 0.02, 0.03, 0.0, 0.03]
    sharpe = rolling_sharpe(returns, 3)
    assert np.isnan(sharpe[:2]).all()
    np.testing.assert_allclose(
        sharpe[2:], [2.0, (0.05 / 3) / math.sqrt(7 / 30_000), 0.02 / math.sqrt(0.0003)]
    )
    sortino = rolling_sortino([0.01, -0.01, 0.02, 0.03], 2, target=0.0)
    # windows: (0.01, −0.01) mean 0 -> 0; (−0.01, 0.02) 0.005 / √(0.0001 / 2); (0.02, 0.03) NaN
    np.testing.assert_allclose(sortino[1:3], [0.0, 0.005 / math.sqrt(0.00005)])
    assert np.isnan(sortino[0]) and np.isnan(sortino[3])


def test_undefined_ratios_are_nan() -> None:
    assert math.isnan(sharpe_ratio([0.01, 0.01, 0.01]))
    assert math.isnan(sortino_ratio([0.01, 0.02]))


def test_exposure_by_symbol() -> None:
    positions = {
        "A": PositionView("A", D("2"), D("90"), D("100")),
        "B": PositionView("B", D("-1"), D("60"), D("50")),
        "C": PositionView("C", D("0"), D("0"), D("10")),
    }
    assert exposure_by_symbol(positions) == {"A": D("200"), "B": D("-50")}
    assert exposure_by_symbol(positions, D("1000")) == {"A": D("0.2"), "B": D("-0.05")}
    with pytest.raises(RiskInputError):
        exposure_by_symbol(positions, D("0"))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: historical_var([]), InsufficientDataError),
        (lambda: historical_var([0.1, float("nan")]), RiskInputError),
        (lambda: historical_var([0.1], 1.0), RiskInputError),
        (lambda: gaussian_var(0.0, -1.0), RiskInputError),
        (lambda: parametric_var([0.1]), InsufficientDataError),
        (lambda: drawdown_series([]), InsufficientDataError),
        (lambda: drawdown_series([0, 1]), RiskInputError),
        (lambda: rolling_sharpe([0.1, 0.2], 3), InsufficientDataError),
        (lambda: rolling_sharpe([0.1, 0.2], 1), RiskInputError),
    ],
)
def test_input_errors(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


_returns = st.lists(
    st.floats(min_value=-0.5, max_value=0.5, allow_nan=False), min_size=2, max_size=300
)


@settings(max_examples=200, deadline=None)
@given(returns=_returns)
def test_tail_measures_are_ordered(returns: list[float]) -> None:
    assert historical_cvar(returns, 0.95) >= historical_var(returns, 0.95) - 1e-12
    assert historical_var(returns, 0.99) >= historical_var(returns, 0.95) - 1e-12
    assert parametric_cvar(returns, 0.95) >= parametric_var(returns, 0.95) - 1e-12
    assert parametric_var(returns, 0.99) >= parametric_var(returns, 0.95) - 1e-12


@settings(max_examples=200, deadline=None)
@given(equity=st.lists(st.floats(min_value=1, max_value=1e6), min_size=1, max_size=200))
def test_drawdown_bounds(equity: list[float]) -> None:
    stats = drawdown_stats(equity)
    assert 0.0 <= stats.current <= stats.maximum < 1.0
    assert stats.max_peak_index <= stats.max_trough_index
