"""A sweep picks its best set in the objective's own direction: risks are minimised.

``--objective max_drawdown`` used to maximise the drawdown, i.e. pick the worst parameter set.
"""

from __future__ import annotations

import math
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.metrics import summarize
from backtesting.engine.optimize import (
    OBJECTIVE_DIRECTIONS,
    grid_search,
    objective_maximized,
    random_search,
    sequential,
)
from backtesting.models import BacktestRun

SPACE = {"x": [1, 2, 3, 4]}


def landscape(params: dict) -> dict[str, float]:
    """Return is highest at x = 4, drawdown smallest at x = 1, volatility smallest at x = 2."""
    x = params["x"]
    return {
        "total_return": 0.1 * x,
        "max_drawdown": 0.05 * x,
        "volatility": abs(x - 2) + 0.5,
        "average_loss": -1.0 / x,
    }


def test_every_reported_metric_has_a_direction() -> None:
    reported = summarize(np.array([100.0, 90.0, 95.0]), initial=100.0, periods_per_year=1.0)
    assert set(OBJECTIVE_DIRECTIONS) == set(reported), "classify each new metric's direction"


def test_risk_metrics_are_positive_magnitudes_so_lower_is_better() -> None:
    """The table relies on metrics.py's signs: a fall is a positive drawdown and VaR."""
    falling = summarize(np.array([90.0, 80.0, 85.0, 70.0]), initial=100.0, periods_per_year=1.0)
    assert falling["max_drawdown"] == pytest.approx(0.3)
    assert falling["var_95"] > 0 and falling["cvar_95"] > 0
    for name in ("max_drawdown", "volatility", "var_95", "cvar_95", "max_drawdown_duration"):
        assert objective_maximized(name) is False, name
    for name in ("sharpe", "total_return", "calmar", "average_loss", "worst_trade"):
        assert objective_maximized(name) is True, name


@pytest.mark.parametrize(
    "objective,best_x", [("total_return", 4), ("max_drawdown", 1), ("volatility", 2),
                         ("average_loss", 4)],
)
def test_the_search_picks_the_best_set_in_the_objectives_direction(objective, best_x) -> None:
    found = grid_search(SPACE, sequential(landscape), objective)
    assert found.best.params == {"x": best_x}
    assert found.maximize is objective_maximized(objective)


def test_an_explicit_direction_still_wins_and_a_directionless_objective_is_refused() -> None:
    worst = grid_search(SPACE, sequential(landscape), "max_drawdown", maximize=True)
    assert worst.best.params == {"x": 4}
    with pytest.raises(BacktestConfigError, match="ranks nothing"):
        random_search(SPACE, sequential(lambda p: {"turnover": 1.0}), "turnover", n_iter=2)


# On these (seeded, simulated) bars the smallest drawdown and the best return are different sets.
SWEEP = ["--strategy", "sma_cross", "--symbols", "BTC-USD", "--timeframe", "4h", "--start",
         "2024-01-01", "--end", "2024-06-01", "--optimize", "grid", "--space", "fast=2:11:3",
         "--space", "slow=12,25,40", "--json", "--source", "sim"]


def sweep(objective: str) -> dict:
    """Run a grid sweep through the command; return the parent's stored search."""
    call_command("backtest", *SWEEP, "--objective", objective, stdout=StringIO())
    parent = BacktestRun.objects.filter(parent__isnull=True).latest("pk")
    assert parent.status == "completed", parent.error
    return parent.metrics["search"]


@pytest.mark.django_db(transaction=True)
def test_sweep_objective_max_drawdown_picks_the_smallest_drawdown() -> None:
    by_drawdown = sweep("max_drawdown")
    trials = by_drawdown["trials"]
    drawdowns = {(t["fast"], t["slow"]): t["max_drawdown"] for t in trials}
    assert len(set(drawdowns.values())) > 1, "the grid must hold different drawdowns"
    smallest = min(drawdowns, key=drawdowns.get)
    picked = by_drawdown["best_params"]
    assert (picked["fast"], picked["slow"]) == smallest
    assert by_drawdown["best_score"] == pytest.approx(min(drawdowns.values()))
    assert by_drawdown["maximize"] is False

    by_return = sweep("total_return")
    returns = {(t["fast"], t["slow"]): t["total_return"] for t in by_return["trials"]}
    best_return = max(returns, key=returns.get)
    assert by_return["maximize"] is True
    assert (by_return["best_params"]["fast"], by_return["best_params"]["slow"]) == best_return
    assert best_return != smallest, "the grid must tell the two objectives apart"
    assert all(math.isfinite(v) for v in drawdowns.values())


@pytest.mark.django_db(transaction=True)
def test_an_objective_that_ranks_nothing_is_refused_before_any_row() -> None:
    with pytest.raises(CommandError, match="--objective: objective 'turnover' ranks nothing"):
        call_command("backtest", *SWEEP, "--objective", "turnover", stdout=StringIO())
    assert not BacktestRun.objects.exists()
