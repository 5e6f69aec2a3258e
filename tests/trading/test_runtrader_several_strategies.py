"""runtrader runs several strategies on its account (issue #14): one that raises is stopped alone
(the account reduces, a risk event and an alert name its file, line and bar), the others keep
receiving bars; the command refuses what it cannot give each (--param, one id twice)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from monitoring.models import Alert, AlertRule
from risk.models import RiskEvent, TradingState
from tests.runtime_harness import db, running, until
from tests.trading.strategy_failures import strategy_file
from trading.engine.hooks import TradingMode
from trading.models import StrategyConfig
from trading.runtime import StrategySpec

ROOT = Path(__file__).resolve().parents[2]
RAISES = """
from trading.engine.strategy import Strategy


class RaisesAt(Strategy):
    default_params = {"after": 3}

    def on_start(self, ctx):
        self.seen = 0

    def on_bar(self, bar, ctx):
        self.seen += 1
        if self.seen > self.params["after"]:
            return 1 / 0
"""
COUNTS = """
from trading.engine.strategy import Strategy


class CountsBars(Strategy):
    default_params = {"path": ""}

    def on_bar(self, bar, ctx):
        with open(self.params["path"], "a") as out:
            out.write(f"{bar.symbol} {bar.ts.isoformat()}\\n")
"""


@pytest.fixture
def raises(tmp_path):
    return strategy_file(tmp_path, RAISES, "RaisesAt")


@pytest.fixture
def counts(tmp_path):
    spec, _ = strategy_file(tmp_path, COUNTS, "CountsBars")
    return spec, tmp_path / "bars.txt"


def bars_seen(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_one_strategy_raises_the_other_keeps_receiving_bars(paper, raises, counts):
    raising, path = raises
    counting, seen = counts
    await db(AlertRule.objects.create)(name="strategies", source="risk", kind="strategy")
    specs = [StrategySpec(raising, {"after": 3}), StrategySpec(counting, {"path": str(seen)})]
    async with running(paper, strategies=specs) as runtime:
        await until(lambda: runtime.oms.mode(paper.name) is TradingMode.REDUCING, "reducing")
        after_failure = bars_seen(seen)
        await until(lambda: bars_seen(seen) >= after_failure + 3, "bars after the failure")
        await until(db(RiskEvent.objects.filter(account=paper, kind="strategy").exists),
                    "the risk event stored")  # fmt: skip
    event = await db(RiskEvent.objects.get)(account=paper, kind="strategy")
    line = RAISES.splitlines().index("            return 1 / 0") + 1  # as dedented, same line
    assert f"{path}, line {line}" in event.message
    assert "ZeroDivisionError" in event.message and "on_bar" in event.message
    assert "BTC-USD" in event.message and "RaisesAt" in event.message
    assert "CountsBars" not in event.message
    assert await db(RiskEvent.objects.filter(account=paper, kind="strategy").count)() == 1
    state = await db(TradingState.objects.get)(account=paper)
    assert state.state == "reducing"
    alert = await db(Alert.objects.get)(kind="strategy")
    assert alert.account == "paper" and "RaisesAt" in alert.message


def runtrader(*args: str) -> None:
    call_command("runtrader", "--paper", "--duration", "1", *args, stdout=open(os.devnull, "w"))


@pytest.mark.django_db
def test_param_with_several_strategies_is_refused(paper) -> None:
    with pytest.raises(CommandError, match="--param applies to one strategy; with several, give "
                                           "each its parameters in a --config row"):  # fmt: skip
        runtrader("--strategy", "sma_cross", "--strategy", "rsi_reversion", "--param", "fast=3")


@pytest.mark.django_db
def test_the_same_strategy_twice_is_refused(paper) -> None:
    with pytest.raises(CommandError, match="--strategy sma_cross: strategy id 'sma_cross' is "
                                           "already given by --strategy sma_cross"):  # fmt: skip
        runtrader("--strategy", "sma_cross", "--strategy", "sma_cross")
    StrategyConfig.objects.create(name="sma_cross", strategy_class="rsi_reversion", params={})
    with pytest.raises(CommandError, match="--config sma_cross: strategy id 'sma_cross' is "
                                           "already given by --strategy sma_cross"):  # fmt: skip
        runtrader("--strategy", "sma_cross", "--config", "sma_cross")


@pytest.mark.django_db
def test_each_config_row_is_checked_for_account_and_timeframe(paper) -> None:
    StrategyConfig.objects.create(name="fast", strategy_class="sma_cross", params={"fast": 3})
    StrategyConfig.objects.create(name="hourly", strategy_class="sma_cross", timeframe="1h")
    with pytest.raises(CommandError, match="--config hourly: it trades 1h bars, not 1m"):
        runtrader("--config", "fast", "--config", "hourly")


def test_runtrader_process_stops_one_strategy_and_trades_on(subprocess_env, raises, counts):
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    raising, _ = raises
    counting, seen = counts
    # Two rows run side by side under their names, with a --strategy on --symbols.
    StrategyConfig.objects.create(name="raises", strategy_class=raising, params={"after": 3},
                                  timeframe="1s")  # fmt: skip
    StrategyConfig.objects.create(name="counts", strategy_class=counting, timeframe="1s",
                                  params={"path": str(seen)}, symbols=["ETH-USD"])  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
         "--symbols", "BTC-USD", "--config", "raises", "--config", "counts",
         "--strategy", "sma_cross", "--duration", "8", "--speed", "20", "--skip-checks"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    event = RiskEvent.objects.get(kind="strategy")
    assert "strategy 'raises' stopped" in event.message and "ZeroDivisionError" in event.message
    assert TradingState.objects.get(account__name="paper").state == "reducing"
    # The counting row traded ETH-USD (its own symbols) on bars well past the failure.
    assert bars_seen(seen) > 3 * 5
    assert {line.split()[0] for line in seen.read_text().splitlines()} == {"ETH-USD"}
