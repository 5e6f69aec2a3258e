"""A backtest stopped by its strategy's sys.exit() or by Ctrl-C is failed, never left running."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from backtesting.models import BacktestRun

pytestmark = pytest.mark.django_db(transaction=True)

STRATEGY = """
import sys
from trading.engine.strategy import Strategy


class Stops(Strategy):
    def on_bar(self, bar, ctx):
        ctx.buy(bar.symbol, 0.01)
        raise {what}
"""


def run_with(tmp_path, what: str) -> None:
    path = tmp_path / "stops.py"
    path.write_text(STRATEGY.format(what=what))
    call_command(
        "backtest", "--strategy", f"{path}:Stops", "--symbols", "BTC-USD", "--timeframe", "1h",
        "--start", "2024-01-01", "--end", "2024-01-03", "--source", "sim", "--no-risk",
        stdout=StringIO(), stderr=StringIO(),
    )  # fmt: skip


def test_a_strategy_calling_sys_exit_fails_the_command_and_the_run(tmp_path):
    # It exited 0 with no output and the run stayed "running" for ever (dashboard and API). The
    # runner takes it for the strategy's error, named with its file, line and bar.
    where = r"strategy Stops raised SystemExit: 0 \(.*stops\.py, line 9; on_bar: the BTC-USD bar"
    with pytest.raises(CommandError, match=where):
        run_with(tmp_path, "SystemExit(0)")
    run = BacktestRun.objects.get()
    assert run.status == "failed" and "raised SystemExit: 0" in run.error
    assert not run.trades.exists()


def test_ctrl_c_mid_run_marks_the_run_failed_and_still_interrupts(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_with(tmp_path, "KeyboardInterrupt()")
    run = BacktestRun.objects.get()
    assert run.status == "failed" and run.error.startswith("KeyboardInterrupt")
