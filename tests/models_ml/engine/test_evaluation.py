"""Evaluation metrics, baselines and the significance test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from models_ml.engine.evaluation import (
    LogisticRegression,
    binomial_p_value,
    log_loss,
    roc_auc,
    sharpe_ratio,
    strategy_returns,
)


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Return P(score_pos > score_neg) + 0.5 P(tie) by enumerating pairs."""
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_definition_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(size=60) + 0.5 * y, 1)  # rounding creates ties
    assert math.isclose(roc_auc(y, s), brute_force_auc(y, s), rel_tol=1e-12)
    assert roc_auc(np.array([1, 0, 1]), np.array([0.9, 0.1, 0.8])) == 1.0
    assert math.isnan(roc_auc(np.ones(4), np.arange(4.0)))


def test_binomial_p_value_exact_small_cases_and_scipy_agreement() -> None:
    assert math.isclose(binomial_p_value(3, 3, 0.5), 0.125)
    assert math.isclose(binomial_p_value(2, 3, 0.5), 0.5)
    assert binomial_p_value(0, 10) == 1.0
    stats = pytest.importorskip("scipy.stats")
    for k, n, p in [(530, 1000, 0.5), (5200, 10_000, 0.51), (60, 100, 0.55)]:
        expected = stats.binomtest(k, n, p, alternative="greater").pvalue
        assert math.isclose(binomial_p_value(k, n, p), expected, rel_tol=1e-9)


def test_log_loss_and_sharpe() -> None:
    assert math.isclose(log_loss(np.array([1, 0]), np.array([0.5, 0.5])), math.log(2))
    assert log_loss(np.array([1]), np.array([1.0])) < 1e-6
    r = np.array([0.01, -0.005, 0.02, 0.0])
    assert math.isclose(sharpe_ratio(r, 252), r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert sharpe_ratio(np.zeros(10), 252) == 0.0


def test_strategy_returns_charge_fees_on_position_changes() -> None:
    up = np.array([True, True, False, True])
    nxt = np.log1p(np.array([0.01, -0.02, 0.03, 0.01]))
    flat = strategy_returns(up, nxt, fee_bps=10, position="long_flat")
    np.testing.assert_allclose(flat, [0.01 - 0.001, -0.02, 0.0 - 0.001, 0.01 - 0.001])
    ls = strategy_returns(up, nxt, fee_bps=10, position="long_short")
    np.testing.assert_allclose(ls, [0.01 - 0.001, -0.02, -0.03 - 0.002, 0.01 - 0.002])


def test_logistic_regression_recovers_a_linear_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    logits = 2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-logits))).astype(float)
    model = LogisticRegression(l2=1e-4).fit(x, y)
    np.testing.assert_allclose(model.weights, [0.5, 2.0, -1.0, 0.0], atol=0.15)
    p = model.predict_proba(x)
    assert roc_auc(y, p) > 0.8 and ((p > 0) & (p < 1)).all()
