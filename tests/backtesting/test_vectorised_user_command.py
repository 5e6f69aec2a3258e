"""``backtest --vectorised`` runs users' signal-style strategies (by path or by name)."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from backtesting.models import BacktestRun, BacktestTrade
from tests.backtesting.engine.test_vectorised_user import EVENT, LONG_ONLY
from trading.engine import user_strategies
from trading.engine.strategies import STRATEGIES

pytestmark = pytest.mark.django_db(transaction=True)
RANGE = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
         "--end", "2024-02-15", "--source", "sim", "--no-risk"]  # fmt: skip


@pytest.fixture
def folder(tmp_path):
    before = user_strategies.strategy_paths()
    path = tmp_path / "strategies"
    path.mkdir()
    (path / "sma.py").write_text(textwrap.dedent(LONG_ONLY))
    (path / "event.py").write_text(textwrap.dedent(EVENT))
    user_strategies.set_strategy_paths([path])
    yield path
    user_strategies.set_strategy_paths(before)
    for key in [k for k in STRATEGIES if str(tmp_path) in k or k.startswith("User")]:
        del STRATEGIES[key]


def backtest(*args: str) -> str:
    out = StringIO()
    call_command("backtest", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def trips(run) -> list[tuple]:
    return list(
        BacktestTrade.objects.filter(run=run)
        .order_by("entry_ts")
        .values_list("side", "entry_ts", "exit_ts", "quantity", "entry_price")
    )


@pytest.mark.parametrize("by", ["path", "name"])
def test_a_user_signal_strategy_runs_vectorised_with_the_event_driven_trades(folder, by):
    name = f"{folder / 'sma.py'}:UserSma" if by == "path" else "UserSma"
    args = ["--strategy", name, *RANGE, "--param", "fast=4", "--param", "slow=12"]
    backtest(*args)
    out = backtest(*args, "--vectorised")
    event, vector = BacktestRun.objects.order_by("pk")
    assert vector.metrics["engine"] == "vectorised" and "engine" not in event.metrics
    assert "engine           vectorised" in out
    assert trips(vector) == trips(event) and len(trips(event)) > 5
    assert vector.metrics["trades"] == event.metrics["trades"]
    ours, theirs = Decimal(vector.metrics["final_equity"]), Decimal(event.metrics["final_equity"])
    assert abs(ours - theirs) < Decimal("1e-6")  # floats against the exact Decimal books


def test_an_event_style_user_strategy_is_refused_before_anything_is_written(folder):
    with pytest.raises(CommandError, match="--vectorised cannot run: strategy 'UserEvent'"):
        backtest("--strategy", "UserEvent", *RANGE, "--vectorised")
    assert not BacktestRun.objects.exists()
