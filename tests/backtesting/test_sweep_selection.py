"""``backtest --optimize`` sweeps report PBO and the deflated Sharpe of the winner."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.metrics import deflated_sharpe
from backtesting.engine.optimize import sweep_selection
from backtesting.models import BacktestRun
from research.engine.hypothesis import pbo_cscv

BASE = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
        "--end", "2024-02-15", "--strategy", "sma_cross", "--optimize", "grid",
        "--space", "fast=5:15:5", "--space", "slow=20:40:10", "--source", "sim"]


def equity_of(returns: np.ndarray) -> np.ndarray:
    """Return equity curves (one column per trial) starting at 100 from period returns."""
    return 100 * np.vstack([np.ones(returns.shape[1]), np.cumprod(1 + returns, axis=0)])


def test_a_skilled_trial_among_noise_is_not_overfit_and_its_deflated_sharpe_is_high():
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.01, (1000, 20))
    returns[:, 4] += 0.004  # one trial with a real edge everywhere
    found = sweep_selection(equity_of(returns), 4)
    assert found["pbo"] < 0.05 and found["deflated_sharpe"] > 0.99
    assert found["pbo_walk_forward"] <= 0.1  # judged on each next block too
    assert (found["trials"], found["periods"], found["blocks"]) == (20, 1000, 16)


def test_the_luckiest_of_noise_trials_is_overfit_and_not_convincing():
    rng = np.random.default_rng(11)
    returns = rng.normal(0, 0.01, (1000, 30))
    equity = equity_of(returns)
    luckiest = int(np.argmax(equity[-1]))
    found = sweep_selection(equity, luckiest)
    assert found["pbo"] > 0.2 and found["deflated_sharpe"] < 0.95


def test_too_short_a_sweep_is_refused_with_a_reason():
    with pytest.raises(BacktestConfigError, match=">= 20 finite returns"):
        sweep_selection(equity_of(np.zeros((5, 3))), 0)


@pytest.mark.django_db(transaction=True)
def test_a_grid_sweep_prints_and_stores_pbo_and_the_winners_deflated_sharpe():
    out = StringIO()
    call_command("backtest", *BASE, stdout=out)
    text = out.getvalue()
    parent = BacktestRun.objects.get(pk=int(text.split("#", 1)[1].split()[0]))
    search = parent.metrics["search"]
    selection = search["selection"]
    assert 0 <= selection["pbo"] <= 1 and 0 <= selection["deflated_sharpe"] <= 1
    assert selection["trials"] == len(search["trials"]) == 9
    assert f"PBO (CSCV)       {selection['pbo']:.4f} over 9 trials" in text
    assert f"PBO walk-forward {selection['pbo_walk_forward']:.4f}" in text
    assert f"deflated Sharpe  {selection['deflated_sharpe']:.4f} (the winner's)" in text
    # The figures are the trials' own: recomputed from the children's stored equity curves.
    children = list(parent.children.order_by("pk"))
    equity = np.array([[v for _, v in c.equity_curve] for c in children]).T
    returns = equity[1:] / equity[:-1] - 1
    assert selection["pbo"] == pytest.approx(pbo_cscv(returns, blocks=selection["blocks"]))
    winner = next(i for i, c in enumerate(children) if c.params == search["best_params"])
    sharpes = returns.mean(axis=0) / returns.std(axis=0, ddof=1)
    assert selection["deflated_sharpe"] == pytest.approx(
        deflated_sharpe(returns[:, winner], sharpes)
    )


@pytest.mark.django_db(transaction=True)
def test_json_output_carries_the_selection():
    out = StringIO()
    call_command("backtest", *BASE, "--json", stdout=out)
    doc = json.loads(out.getvalue().strip().splitlines()[-1])
    assert 0 <= doc["metrics"]["search"]["selection"]["pbo"] <= 1
