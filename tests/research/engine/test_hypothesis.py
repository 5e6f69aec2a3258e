"""Hypothesis tests: noise must not look like skill, and planted skill must be found."""

from __future__ import annotations

import numpy as np
import pytest

from research.engine import hypothesis
from research.engine.errors import ResearchInputError


def noise_universe(seed: int, periods: int = 1000, strategies: int = 50) -> np.ndarray:
    """Return the returns of strategies that trade a random walk: no skill anywhere."""
    return np.random.default_rng(seed).normal(0, 0.01, (periods, strategies))


def test_a_random_walk_universe_of_50_strategies_has_pbo_near_one_half():
    pbos = [hypothesis.pbo_cscv(noise_universe(seed)) for seed in range(5)]
    assert 0.3 <= np.mean(pbos) <= 0.7
    assert all(0.1 <= p <= 0.9 for p in pbos)


def test_walk_forward_pbo_is_near_one_half_for_noise_and_near_zero_for_skill():
    pbos = [hypothesis.pbo_walk_forward(noise_universe(seed)) for seed in range(10)]
    assert 0.35 <= np.mean(pbos) <= 0.65
    skilled = noise_universe(11)
    skilled[:, 7] += 0.004  # one strategy with a real edge
    assert hypothesis.pbo_walk_forward(skilled) <= 0.1
    with pytest.raises(ResearchInputError, match="blocks"):
        hypothesis.pbo_walk_forward(skilled, blocks=1)


def test_no_strategy_of_a_random_walk_universe_survives_the_reality_check_or_spa():
    result = hypothesis.data_snooping_test(noise_universe(1), reps=500, seed=1)
    assert result.reality_check_p > 0.05
    assert result.spa_p > 0.05


def test_a_planted_skilled_strategy_survives_and_is_not_overfit():
    returns = noise_universe(2)
    returns[:, 7] += 0.003  # Sharpe 0.3 per period: real skill
    result = hypothesis.data_snooping_test(returns, reps=500, seed=2)
    assert result.best == 7
    assert result.reality_check_p < 0.01 and result.spa_p < 0.01
    assert hypothesis.pbo_cscv(returns) < 0.05
    report = hypothesis.selection_report(returns)
    assert report["best"] == 7 and report["deflated_sharpe"] > 0.99


def test_the_deflated_sharpe_of_the_luckiest_noise_strategy_is_not_convincing():
    report = hypothesis.selection_report(noise_universe(3))
    assert report["best_sharpe"] > 0  # the winner looks good before deflation
    assert report["deflated_sharpe"] < 0.95


def test_benjamini_hochberg_and_holm_adjust_as_published():
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    reject, adjusted = hypothesis.adjust_pvalues(p, method="bh", alpha=0.05)
    assert adjusted == pytest.approx([0.05] * 5) and all(reject)
    reject, adjusted = hypothesis.adjust_pvalues(p, method="holm", alpha=0.05)
    assert (
        adjusted == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09]) and reject == [True] + [False] * 4
    )
    with pytest.raises(ResearchInputError, match="unknown correction"):
        hypothesis.adjust_pvalues(p, method="bonferroni-ish")


def test_mean_return_test_separates_drift_from_noise_and_its_ci_covers_the_truth():
    rng = np.random.default_rng(4)
    drift = hypothesis.mean_return_test(rng.normal(0.002, 0.01, 2000), seed=4)
    assert drift.p_value < 0.001 and drift.ci_low < 0.002 < drift.ci_high
    assert drift.ci_low > 0
    noise = hypothesis.mean_return_test(rng.normal(0.0, 0.01, 2000), seed=4)
    assert noise.p_value > 0.05 and noise.ci_low < 0 < noise.ci_high


def test_bad_matrices_are_refused():
    with pytest.raises(ResearchInputError, match="matrix"):
        hypothesis.pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(ResearchInputError, match="blocks"):
        hypothesis.pbo_cscv(noise_universe(5), blocks=7)
