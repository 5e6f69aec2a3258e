"""Metrics against hand-computed values and the empyrical / quantstats formulas written out."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backtesting.engine import metrics as m

RNG = np.random.default_rng(5)
R = RNG.normal(0.0005, 0.01, 500)
B = 0.6 * R + RNG.normal(0.0002, 0.008, 500)
PPY = 252.0


# ----------------------------------------------------------------- hand-computed


def test_returns_total_and_cagr_by_hand() -> None:
    np.testing.assert_allclose(m.returns_from_equity([110, 99], initial=100), [0.1, -0.1])
    assert m.total_return([110, 99], initial=100) == pytest.approx(-0.01)
    assert m.cagr([110, 121], periods_per_year=1, initial=100) == pytest.approx(0.1)
    # 21 % over 2 of 4 periods a year = 1.21² − 1 a year.
    assert m.cagr([110, 121], periods_per_year=4, initial=100) == pytest.approx(1.21**2 - 1)


def test_volatility_sharpe_sortino_by_hand() -> None:
    r = [0.1, -0.1, 0.05, 0.0]
    mean = 0.0125
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert m.volatility(r, 4) == pytest.approx(sd * 2)
    assert m.sharpe(r, 4) == pytest.approx(mean / sd * 2)
    downside = math.sqrt(0.1**2 / 4)
    assert m.sortino(r, 4) == pytest.approx(mean / downside * 2)
    assert math.isnan(m.sharpe([0.01], 4)) and math.isnan(m.sharpe([0.01, 0.01], 4))


def test_drawdown_depth_duration_and_calmar_by_hand() -> None:
    assert m.max_drawdown([100, 120, 90, 130, 65]) == pytest.approx(0.5)
    assert m.max_drawdown_duration([1, 2, 1.5, 1.8, 2.5, 2, 2]) == 3
    assert list(m.drawdown_durations([1, 2, 1.5, 1.8, 2.5, 2, 2])) == [3, 2]
    assert m.max_drawdown_duration([1, 2, 3]) == 0
    curve = [100, 150, 75, 121]  # 3 periods, 1 a year: CAGR 1.21^(1/3) − 1, drawdown 50 %
    assert m.calmar(curve, 1) == pytest.approx((1.21 ** (1 / 3) - 1) / 0.5)


def test_omega_by_hand() -> None:
    assert m.omega([0.02, -0.01, 0.03, -0.02]) == pytest.approx(0.05 / 0.03)
    assert m.omega([0.02, -0.01], threshold=0.01) == pytest.approx(0.01 / 0.02)
    assert math.isnan(m.omega([0.01, 0.02]))


def test_trade_statistics_by_hand() -> None:
    pnl = [10, -5, 20, -10, 5]
    assert m.win_rate(pnl) == pytest.approx(0.6)
    assert m.profit_factor(pnl) == pytest.approx(35 / 15)
    assert m.expectancy(pnl) == pytest.approx(4)
    assert m.average_win(pnl) == pytest.approx(35 / 3)
    assert m.average_loss(pnl) == pytest.approx(-7.5)
    sd = math.sqrt(sum((x - 4) ** 2 for x in pnl) / 4)
    assert m.sqn(pnl) == pytest.approx(math.sqrt(5) * 4 / sd)
    assert m.kelly_fraction(pnl) == pytest.approx(0.6 - 0.4 / ((35 / 3) / 7.5))
    assert m.profit_factor([1, 2]) == math.inf
    assert m.exposure_time([True, False, False, True]) == 0.5


def test_var_and_cvar_are_the_risk_engines_order_statistics() -> None:
    r = np.linspace(-0.1, 0.09, 20)  # k = ceil(20 × 5 %) = 1 worst observation
    assert m.value_at_risk(r) == pytest.approx(0.1)
    assert m.conditional_value_at_risk(r, 0.9) == pytest.approx((0.1 + 0.09) / 2)


def test_alpha_beta_of_a_levered_copy() -> None:
    r = 2 * B + 0.001
    alpha, beta = m.alpha_beta(r, B, PPY)
    assert beta == pytest.approx(2.0)
    assert alpha == pytest.approx(1.001**PPY - 1)


# ----------------------------------------------------------------- written-out formulas


def test_sharpe_sortino_volatility_match_quantstats_formulas() -> None:
    s = pd.Series(R)
    assert m.sharpe(R, PPY) == pytest.approx(s.mean() / s.std(ddof=1) * np.sqrt(PPY))
    downside = np.sqrt((s[s < 0] ** 2).sum() / len(s))
    assert m.sortino(R, PPY) == pytest.approx(s.mean() / downside * np.sqrt(PPY))
    assert m.volatility(R, PPY) == pytest.approx(s.std() * np.sqrt(PPY))
    assert m.skew(R) == pytest.approx(s.skew())
    assert m.kurtosis(R) == pytest.approx(s.kurt())


def test_cagr_calmar_omega_match_empyrical_formulas() -> None:
    equity = 100 * np.cumprod(1 + R)
    ending = equity[-1] / 100
    annual = ending ** (1 / (len(R) / PPY)) - 1
    assert m.cagr(equity, PPY, initial=100) == pytest.approx(annual)
    curve = np.concatenate([[100], equity])
    dd = (curve / np.maximum.accumulate(curve) - 1).min()
    assert m.max_drawdown(curve) == pytest.approx(-dd)
    assert m.calmar(equity, PPY, initial=100) == pytest.approx(annual / abs(dd))
    less = R - 0.0
    assert m.omega(R) == pytest.approx(less[less > 0].sum() / -less[less < 0].sum())


def test_alpha_beta_match_empyrical_formulas() -> None:
    resid = B - B.mean()
    beta = np.mean(resid * R) / np.mean(resid**2)
    alpha = (np.mean(R - beta * B) + 1) ** PPY - 1
    got_alpha, got_beta = m.alpha_beta(R, B, PPY)
    assert got_beta == pytest.approx(beta)
    assert got_alpha == pytest.approx(alpha)
    assert got_beta == pytest.approx(np.cov(R, B)[0, 1] / np.var(B, ddof=1))


def test_probabilistic_and_deflated_sharpe_match_bailey_lopez_de_prado() -> None:
    sr = R.mean() / R.std(ddof=1)
    g3, g4 = stats.skew(R), stats.kurtosis(R, fisher=False)
    z = (sr - 0.02) * np.sqrt(len(R) - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert m.probabilistic_sharpe(R, 0.02) == pytest.approx(NormalDist().cdf(z))
    assert m.probabilistic_sharpe(R, sr) == pytest.approx(0.5)
    trials = np.random.default_rng(2).normal(0, 0.05, 40)
    n, gamma = 40, 0.5772156649015329
    inv = NormalDist().inv_cdf
    sr0 = np.std(trials, ddof=1) * ((1 - gamma) * inv(1 - 1 / n) + gamma * inv(1 - 1 / (n * np.e)))
    assert m.expected_max_sharpe(trials) == pytest.approx(sr0)
    assert m.deflated_sharpe(R, trials) == pytest.approx(m.probabilistic_sharpe(R, sr0))
    assert m.deflated_sharpe(R, trials) < m.probabilistic_sharpe(R)


def test_summary_has_every_metric_of_the_issue() -> None:
    equity = 1000 * np.cumprod(1 + R)
    out = m.summarize(
        equity,
        initial=1000,
        periods_per_year=PPY,
        trade_pnls=[10, -5, 20],
        trade_returns=[0.01, -0.005, 0.02],
        benchmark_returns=B,
        in_market=[True, False],
        turnover=3.0,
        trial_sharpes=[0.01, 0.02, 0.05],
    )
    wanted = {
        "total_return", "annualised_return", "cagr", "volatility", "sharpe", "sortino", "calmar",
        "omega", "max_drawdown", "max_drawdown_duration", "win_rate", "profit_factor",
        "expectancy", "average_win", "average_loss", "best_trade", "worst_trade",
        "exposure_time", "turnover", "trades", "sqn", "kelly", "var_95", "cvar_95", "skew",
        "kurtosis", "alpha", "beta", "probabilistic_sharpe", "deflated_sharpe",
    }  # fmt: skip
    assert wanted <= set(out)
    assert out["best_trade"] == 0.02 and out["worst_trade"] == -0.005 and out["trades"] == 3
    assert all(isinstance(v, float) for v in out.values())


# ----------------------------------------------------------------- summarize's shared passes


def _curves() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    steps = np.where(rng.random(5_000) < 0.6, 0.0, rng.normal(0.0, 0.002, 5_000))
    return [
        ("walk with flat stretches", 1000.0 * np.cumprod(1.0 + steps)),
        ("only rises", 1000.0 + np.arange(1.0, 50.0)),
        ("flat", np.full(40, 1000.0)),
        ("underwater to the end", 1000.0 - np.arange(1.0, 30.0)),
        ("one point", np.array([990.0])),
        ("two points", np.array([990.0, 1010.0])),
        ("three points", np.array([990.0, 1010.0, 1000.0])),
        ("falls through zero", np.array([500.0, -20.0, 30.0, 40.0])),
    ]


@pytest.mark.parametrize("name,curve", _curves(), ids=[n for n, _ in _curves()])
def test_summarize_equals_each_metric_bit_for_bit(name: str, curve: np.ndarray) -> None:
    """summarize computes the running peak, the standard deviation and the moments once; each
    figure must still be exactly (not approximately) what the public function gives."""
    initial, ppy = 1000.0, 252.0
    trials = [0.01, 0.03, -0.02]
    out = m.summarize(curve, initial=initial, periods_per_year=ppy, trial_sharpes=trials)
    r = m.returns_from_equity(curve, initial)
    full = np.concatenate([[initial], curve])
    expected = {
        "volatility": m.volatility(r, ppy),
        "sharpe": m.sharpe(r, ppy),
        "sortino": m.sortino(r, ppy),
        "omega": m.omega(r),
        "max_drawdown": m.max_drawdown(full),
        "max_drawdown_duration": float(m.max_drawdown_duration(full)),
        "skew": m.skew(r),
        "kurtosis": m.kurtosis(r),
        "probabilistic_sharpe": m.probabilistic_sharpe(r),
        "deflated_sharpe": m.deflated_sharpe(r, trials),
    }
    for key, want in expected.items():
        got = out[key]
        assert (math.isnan(got) and math.isnan(want)) or got == want, (key, got, want)


def test_summarize_refuses_a_curve_with_nan_as_the_drawdown_does() -> None:
    from risk.engine.errors import RiskInputError

    curve = np.array([1000.0, np.nan, 1010.0])
    with pytest.raises(RiskInputError):
        m.max_drawdown(np.concatenate([[1000.0], curve]))
    with pytest.raises(RiskInputError):
        m.summarize(curve, initial=1000.0, periods_per_year=252.0)


@pytest.mark.parametrize("name,curve", _curves(), ids=[n for n, _ in _curves()])
def test_in_place_returns_and_alpha_beta_equal_the_formulas_bit_for_bit(name, curve) -> None:
    """returns_from_equity and alpha_beta work in one or two buffers (no temporaries of the
    series): exactly the figures of their formulas written out with temporaries."""
    initial = 1000.0
    full = np.concatenate([[initial], curve])
    assert m.returns_from_equity(curve, initial).tolist() == (full[1:] / full[:-1] - 1.0).tolist()
    plain = (curve[1:] / curve[:-1] - 1.0).tolist() if curve.size > 1 else []
    assert m.returns_from_equity(curve).tolist() == plain
    assert m.returns_from_equity(np.empty(0), initial).size == 0
    r = full[1:] / full[:-1] - 1.0
    b = np.sin(np.arange(r.size)) * 0.01 + r * 0.3
    for rf in (0.0, 0.0001):
        got = m.alpha_beta(r, b, 252.0, rf)
        if r.size < 2:
            assert all(math.isnan(x) for x in got)
            continue
        centred = b - b.mean()
        var = np.mean(centred * centred)
        beta = float(np.mean(centred * r) / var)
        base = 1.0 + ((r - rf) - beta * (b - rf)).mean()
        assert got == (float(base**252.0 - 1.0 if base > 0 else -1.0), beta)


@pytest.mark.parametrize("name,curve", _curves(), ids=[n for n, _ in _curves()])
def test_summarize_in_scratch_rows_equals_the_public_functions_bit_for_bit(name, curve) -> None:
    """summarize computes the moments, the drawdown, VaR, the downside and alpha in two scratch
    rows and takes the sample std from the moments' sum: still exactly each public figure."""
    initial, ppy = 1000.0, 252.0
    r = m.returns_from_equity(curve, initial)
    b = np.sin(np.arange(r.size)) * 0.01 + r * 0.3
    flags = np.cos(np.arange(curve.size)) > 0.2
    out = m.summarize(
        curve, initial=initial, periods_per_year=ppy, benchmark_returns=b, in_market=flags
    )
    alpha, beta = m.alpha_beta(r, b, ppy) if r.size > 1 else (math.nan, math.nan)
    finite = bool(np.isfinite(r).all()) and r.size > 0
    expected = {
        "annualised_return": m.annualised_return(r, ppy),
        "volatility": float(r.std(ddof=1) * math.sqrt(ppy)) if r.size > 1 else math.nan,
        "var_95": m.value_at_risk(r) if finite else math.nan,
        "cvar_95": m.conditional_value_at_risk(r) if finite else math.nan,
        "exposure_time": float(flags.mean()),
        "alpha": alpha,
        "beta": beta,
    }
    for key, want in expected.items():
        if key.endswith("_95") and not finite:
            continue
        got = out[key]
        assert type(got) is float, (key, type(got))  # plain floats, not numpy scalars
        assert (math.isnan(got) and math.isnan(want)) or got == want, (key, got, want)
