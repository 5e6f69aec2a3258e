"""Monte Carlo: seeded, shuffles keep compounded final equity, bootstraps vary it."""

from __future__ import annotations

import numpy as np
import pytest

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.montecarlo import block_bootstrap, shuffle_trades

TRADES = [0.05, -0.02, 0.03, -0.04, 0.01, 0.02, -0.01]


def test_shuffle_keeps_final_equity_and_spreads_drawdowns() -> None:
    result = shuffle_trades(TRADES, initial_equity=1000, n_simulations=300, seed=1)
    np.testing.assert_allclose(result.final_equity, 1000 * np.prod(1 + np.array(TRADES)))
    assert result.max_drawdown.min() < result.max_drawdown.max()
    dd = result.max_drawdown_percentiles()
    assert list(dd) == [5.0, 25.0, 50.0, 75.0, 95.0]
    assert list(dd.values()) == sorted(dd.values())
    # The worst ordering puts every loss together.
    worst = 1 - np.prod(1 + np.array([-0.02, -0.04, -0.01]))
    assert result.max_drawdown.max() <= worst + 1e-12


def test_seeded_reproducible_and_bootstrap_with_replacement_varies_final_equity() -> None:
    a = shuffle_trades(TRADES, initial_equity=1000, n_simulations=200, seed=7, replace=True)
    b = shuffle_trades(TRADES, initial_equity=1000, n_simulations=200, seed=7, replace=True)
    np.testing.assert_array_equal(a.final_equity, b.final_equity)
    assert a.final_equity.std() > 0
    summary = a.summary()
    assert summary["final_equity_p5"] <= summary["final_equity_p50"] <= summary["final_equity_p95"]


def test_block_bootstrap_keeps_length_and_blocks() -> None:
    returns = np.random.default_rng(0).normal(0.001, 0.01, 250)
    whole = block_bootstrap(returns, initial_equity=100, n_simulations=5, block=250, seed=2)
    np.testing.assert_allclose(
        whole.final_equity, 100 * np.prod(1 + returns)
    )  # one block: same path
    result = block_bootstrap(returns, initial_equity=100, n_simulations=400, block=10, seed=2)
    assert result.final_equity.shape == (400,) and result.final_equity.std() > 0
    again = block_bootstrap(returns, initial_equity=100, n_simulations=400, block=10, seed=2)
    np.testing.assert_array_equal(result.max_drawdown, again.max_drawdown)


def test_chunking_does_not_change_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    returns = np.random.default_rng(3).normal(0, 0.01, 100)
    whole = block_bootstrap(returns, initial_equity=1, n_simulations=50, block=5, seed=9)
    import backtesting.engine.montecarlo as mc

    monkeypatch.setattr(mc, "CHUNK_CELLS", 250)  # chunks of 2 paths
    chunked = block_bootstrap(returns, initial_equity=1, n_simulations=50, block=5, seed=9)
    np.testing.assert_array_equal(chunked.final_equity, whole.final_equity)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(BacktestConfigError):
        shuffle_trades([], initial_equity=1)
    with pytest.raises(BacktestConfigError):
        shuffle_trades([-1.5], initial_equity=1)
    with pytest.raises(BacktestConfigError):
        block_bootstrap([0.01], initial_equity=1, block=0)
