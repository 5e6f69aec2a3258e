"""Microstructure estimators recover planted impact, spreads and order-flow persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.engine import microstructure
from research.engine.errors import ResearchInputError

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def impact_trades(n: int, lam: float, seed: int, persistence: float = 0.0) -> pd.DataFrame:
    """Trades whose every print moves the price by ``lam`` x signed size, plus noise."""
    rng = np.random.default_rng(seed)
    signs = np.empty(n)
    signs[0] = 1.0
    flips = rng.random(n) >= persistence
    draws = rng.choice([-1.0, 1.0], n)
    for i in range(1, n):
        signs[i] = draws[i] if flips[i] else signs[i - 1]
    size = rng.exponential(1.0, n)
    price = 100 + np.cumsum(lam * signs * size + rng.normal(0, 0.01, n))
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, n * 1.2, n)), unit="s")
    side = np.where(signs > 0, "buy", "sell")
    return pd.DataFrame({"price": price, "size": size, "side": side}, index=ts)


def test_kyle_lambda_recovers_a_planted_flow_impact_within_10_percent():
    fit = microstructure.kyle_lambda(impact_trades(20_000, 0.02, seed=1), interval="1min")
    assert fit.coefficient == pytest.approx(0.02, rel=0.1)
    assert fit.p_value < 1e-6


def test_kyle_lambda_is_insignificant_when_flow_carries_no_information():
    trades = impact_trades(20_000, 0.0, seed=2)
    fit = microstructure.kyle_lambda(trades, interval="1min")
    assert abs(fit.coefficient) < 0.002


def test_roll_spread_recovers_a_planted_bid_ask_bounce():
    rng = np.random.default_rng(3)
    efficient = 100 + np.cumsum(rng.normal(0, 0.01, 50_000))
    spread = 0.1
    prices = efficient + rng.choice([-1, 1], efficient.size) * spread / 2
    assert microstructure.roll_spread(pd.Series(prices)) == pytest.approx(spread, rel=0.1)


def test_effective_spread_uses_the_quote_prevailing_before_each_trade():
    quotes = pd.DataFrame(
        {"bid": [99.0, 98.0] * 10, "ask": [101.0, 102.0] * 10, "bid_size": 1.0, "ask_size": 1.0},
        index=T0 + pd.to_timedelta(np.arange(20) * 10, unit="s"),
    )
    # Each trade prints 5 s after a quote at its ask: never the next quote's.
    trades = pd.DataFrame(
        {"price": [101.0, 102.0] * 10, "size": 1.0},
        index=T0 + pd.to_timedelta(np.arange(20) * 10 + 5, unit="s"),
    )
    eff = microstructure.effective_spread(trades, quotes)
    assert eff.to_numpy() == pytest.approx([0.02, 0.04] * 10)


def test_order_flow_imbalance_follows_cont_kukanov_stoikov():
    quotes = pd.DataFrame(
        {
            "bid": [100.0, 100.0, 100.5, 100.5],
            "bid_size": [5.0, 7.0, 2.0, 2.0],
            "ask": [101.0, 101.0, 101.0, 100.8],
            "ask_size": [4.0, 4.0, 6.0, 3.0],
        },
        index=T0 + pd.to_timedelta(np.arange(4), unit="s"),
    )
    ofi = microstructure.order_flow_imbalance(quotes)
    # +2 bid size at the same bid; a higher bid (+2) while the ask queue grows by 2 (-2);
    # the ask improves to a new level holding 3 (-3).
    assert ofi.to_numpy() == pytest.approx([2.0, 0.0, -3.0])


def test_trade_signs_autocorrelate_when_orders_are_split():
    persistent = impact_trades(20_000, 0.0, seed=4, persistence=0.8)
    lag1 = microstructure.sign_autocorrelation(persistent, lags=5)[0]
    assert lag1 == pytest.approx(0.8, abs=0.03)
    independent = impact_trades(20_000, 0.0, seed=5)
    assert abs(microstructure.sign_autocorrelation(independent, lags=5)[0]) < 0.03


def test_vpin_is_high_for_one_sided_flow_and_lower_for_balanced_flow():
    one_sided = impact_trades(5_000, 0.02, seed=6, persistence=0.99)
    balanced = impact_trades(5_000, 0.02, seed=7)
    high = microstructure.vpin(one_sided, bucket_volume=50, window=20).mean()
    low = microstructure.vpin(balanced, bucket_volume=50, window=20).mean()
    assert 0 <= low < high <= 1
    with pytest.raises(ResearchInputError, match="bucket_volume"):
        microstructure.vpin(balanced, bucket_volume=0)


def test_signature_plot_shows_noise_inflating_fast_sampling():
    trades = impact_trades(20_000, 0.0, seed=8)
    bounce = np.where(np.arange(len(trades)) % 2 == 0, 0.05, -0.05)
    noisy = trades["price"] + bounce
    plot = microstructure.signature_plot(noisy, intervals=["1s", "1min", "10min"])
    assert plot["1s"] > plot["1min"] > 0


def test_kyle_lambda_by_hour_of_day():
    table = microstructure.by_hour(impact_trades(20_000, 0.02, seed=9))
    assert set(table["hour"]) <= set(range(24)) and len(table) >= 6
    assert table["kyle_lambda"].between(0.015, 0.025).all()
