"""Stat-arb statistics against processes whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from research.engine import statarb
from research.engine.errors import ResearchInputError
from tests.research.synthetic import ar1, cointegrated_pair, random_walk_prices


def test_a_planted_cointegrated_pair_is_found_with_its_hedge_ratio():
    a, b = cointegrated_pair(1000, seed=1, beta=1.2)
    res = statarb.engle_granger(a, b, names=("A", "B"))
    assert res.p_value < 0.01
    assert res.hedge_ratio == pytest.approx(1.2, rel=0.05)
    assert res.half_life == pytest.approx(-math.log(2) / math.log(0.9), rel=0.3)
    assert res.hurst < 0.4  # the spread mean-reverts


def test_independent_random_walks_are_rejected_at_about_the_stated_rate_over_100_seeds():
    false_positives = 0
    for seed in range(100):
        rng = np.random.default_rng(10_000 + seed)
        y, x = random_walk_prices(500, rng), random_walk_prices(500, rng)
        false_positives += statarb.engle_granger(y, x, lags=1).p_value < 0.05
    # Binomial(100, 0.05): P(X >= 12) < 0.5 %; a broken test rejects far more often.
    assert false_positives <= 11


def test_scan_finds_the_planted_pair_and_nothing_else_after_correction():
    a, b = cointegrated_pair(800, seed=2)
    rng = np.random.default_rng(3)
    prices = pd.DataFrame(
        {"A": a, "B": b, **{f"R{i}": random_walk_prices(800, rng) for i in range(4)}}
    )
    results = statarb.scan_pairs(prices, alpha=0.01)
    assert len(results) == 15
    significant = [(r.y, r.x) for r in results if r.p_adjusted <= 0.01]
    assert significant == [("A", "B")]
    assert all(r.p_adjusted >= r.p_value for r in results)


def test_half_life_of_an_ar1_with_known_phi_is_recovered():
    spread = ar1(20_000, 0.95, 1.0, np.random.default_rng(4))
    expected = -math.log(2) / math.log(0.95)
    assert statarb.half_life(spread) == pytest.approx(expected, rel=0.1)
    walk = np.cumsum(np.random.default_rng(5).normal(size=5000))
    assert statarb.half_life(walk) > 50 * expected or math.isinf(statarb.half_life(walk))


def test_hurst_is_one_half_for_a_random_walk_and_lower_when_mean_reverting():
    walk = np.cumsum(np.random.default_rng(6).normal(size=20_000))
    assert statarb.hurst(walk) == pytest.approx(0.5, abs=0.05)
    assert statarb.hurst(ar1(20_000, 0.5, 1.0, np.random.default_rng(7))) < 0.2


def test_kalman_hedge_ratio_follows_a_change_of_beta_using_only_the_past():
    rng = np.random.default_rng(8)
    x = np.cumsum(rng.normal(0, 0.05, 2000)) + 5
    beta = np.where(np.arange(2000) < 1000, 1.0, 2.0)
    y = beta * x + rng.normal(0, 0.01, 2000)
    betas, _ = statarb.hedge_ratio_kalman(y, x, obs_var=1e-4)
    assert betas[990] == pytest.approx(1.0, abs=0.1)
    assert betas[-1] == pytest.approx(2.0, abs=0.1)
    # Filtering: the estimate at t is unchanged by data after t.
    early, _ = statarb.hedge_ratio_kalman(y[:500], x[:500], obs_var=1e-4)
    np.testing.assert_allclose(early, betas[:500])


def test_johansen_finds_rank_one_in_a_planted_basket_and_none_among_random_walks():
    a, b = cointegrated_pair(1500, seed=9)
    rng = np.random.default_rng(10)
    basket = pd.DataFrame({"A": a, "B": b, "C": random_walk_prices(1500, rng)})
    assert statarb.johansen(basket).rank >= 1
    walks = pd.DataFrame({k: random_walk_prices(1500, rng) for k in "XYZ"})
    assert statarb.johansen(walks).rank == 0


def test_rolling_cointegration_reports_each_window():
    a, b = cointegrated_pair(900, seed=11, phi=0.7)
    rolling = statarb.rolling_cointegration(a, b, window=300, step=150)
    assert list(rolling["end"]) == [300, 450, 600, 750, 900]
    assert (rolling["p_value"] < 0.01).all()
    assert rolling["hedge_ratio"].between(1.0, 1.4).all()


def test_bad_series_are_refused_with_a_clear_error():
    with pytest.raises(ResearchInputError, match="NaN"):
        statarb.engle_granger(np.array([1.0, np.nan] * 20), np.ones(40))
    with pytest.raises(ResearchInputError, match="at least"):
        statarb.engle_granger(np.ones(5), np.ones(5))
    with pytest.raises(ResearchInputError, match="two symbols"):
        statarb.scan_pairs(pd.DataFrame({"A": np.ones(50)}))
