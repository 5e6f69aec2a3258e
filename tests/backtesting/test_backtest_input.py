"""``backtest``: bad input is one clear error and writes nothing; sweeps never stay pending;
report paths built from user data stay inside REPORTS_DIR."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.models import BacktestRun
from marketdata.models import Symbol

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
RANGE = ["--start", "2024-01-01", "--end", "2024-01-20", "--source", "sim"]
SMA = ["--strategy", "sma_cross", *RANGE]


def backtest(*args: str) -> str:
    """Run the command and return its stdout."""
    out = StringIO()
    call_command("backtest", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    "args,message",
    [
        ([*SMA, "--timeframe", "7x"], "--timeframe must be one of"),
        ([*SMA, "--timeframe", "1s", "--start", "2000-01-01"], "bars per symbol"),
        ([*SMA, "--start", "2024-13-01"], "--start: expected YYYY-MM-DD"),
        ([*SMA, "--fees-bps", "-1"], "--fees-bps must be between 0"),
        ([*SMA, "--fees-bps", "nan"], "--fees-bps must be a finite number"),
        ([*SMA, "--slippage-bps", "NaN"], "--slippage-bps must be a finite number"),
        ([*SMA, "--capital", "inf"], "--capital must be a finite number"),
        ([*SMA, "--capital", "0"], "--capital must be > 0"),
        ([*SMA, "--symbols", "NOPE-XYZ"], "unknown symbol NOPE-XYZ"),
        ([*SMA, "--symbols", "X" * 40 + "-USD"], "is not a symbol name"),
        ([*SMA, "--symbols", "BTC-USD,BTC-USD"], "twice"),
        ([*SMA, "--symbols", " , "], "at least one symbol"),
        ([*SMA, "--param", "garbage"], "--param"),
        ([*SMA, "--param", "fast=abc"], "fast"),
        ([*SMA, "--param", "nope=3"], "unknown parameter"),
        ([*SMA, "--montecarlo", "-5"], "--montecarlo must be between 0"),
        ([*SMA, "--report", "out.txt"], "--report must end in .html"),
        ([*SMA, "--optimize", "walkforward"], "--train-bars"),
        ([*SMA, "--optimize", "grid", "--space", "fast=zz"], "expected numbers"),
        ([*SMA, "--optimize", "grid", "--space", "fast"], "--space expects name="),
        ([*SMA, "--optimize", "grid", "--space", "bogus=1:3"], "has no parameter bogus"),
        ([*SMA, "--optimize", "grid", "--space", "fast=5:1"], "low <= high"),
        ([*SMA, "--optimize", "grid", "--space", "fast=1:100000"], "combinations"),
        ([*SMA, "--optimize", "grid", "--objective", "nope"], "--objective must be"),
        ([*SMA, "--optimize", "random", "--trials", "0"], "--trials"),
        ([*SMA, "--optimize", "random", "--space", "bogus=1:3", "--async"], "bogus"),
        (["--strategy", "bollinger_breakout", *RANGE, "--optimize", "grid",
          "--space", "k=1.0:2.0:0"], "step must be a positive"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(args, message):
    symbols_before = Symbol.objects.count()
    with pytest.raises(CommandError, match=re.escape(message)) as caught:
        backtest(*args)
    assert "\n" not in str(caught.value)
    assert BacktestRun.objects.count() == 0  # refused before any run row exists
    assert Symbol.objects.count() == symbols_before


def test_a_bad_timeframe_exits_non_zero_with_one_line(subprocess_env):
    done = subprocess.run(
        [sys.executable, "manage.py", "backtest", *SMA, "--timeframe", "7x"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["CommandError: --timeframe must be one of 1s, 1m, 5m, 15m, 1h, 4h, 1d, "
                     "got '7x'"], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert BacktestRun.objects.count() == 0


def test_bollinger_grid_over_its_float_parameter_completes_and_stores_its_trials(subprocess_env):
    done = subprocess.run(
        [sys.executable, "manage.py", "backtest", "--strategy", "bollinger_breakout", *RANGE,
         "--optimize", "grid", "--json"],
        cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    parent = BacktestRun.objects.get(pk=doc["run"])
    assert parent.status == "completed"
    children = list(parent.children.all())
    # The default space: period 10..40 step 10, k 1.5..3.0 step 0.5 -> 4 x 4 trials.
    assert len(children) == 16 and {c.status for c in children} == {"completed"}
    assert sorted({c.params["k"] for c in children}) == [1.5, 2.0, 2.5, 3.0]
    assert len(parent.metrics["search"]["trials"]) == 16
    assert parent.params == parent.metrics["search"]["best_params"]


# ------------------------------------------------------------------ sweeps never stay pending


@pytest.fixture
def exploding_strategy():
    """A real registered strategy whose ``boom=1`` trials raise on the first bar."""
    from trading.engine.strategies import register, unregister
    from trading.engine.strategy import Strategy

    class Exploding(Strategy):
        default_params = {"boom": 0}

        def on_bar(self, bar, ctx) -> None:
            if self.params["boom"]:
                raise RuntimeError("trial exploded on purpose")

    register("test_exploding")(Exploding)
    yield "test_exploding"
    unregister("test_exploding")


def _parent(strategy: str, optimize: str = "grid") -> BacktestRun:
    from backtesting.services import Costs, backtest_run_create

    return backtest_run_create(
        strategy=strategy, params={}, symbols=["BTC-USD"], timeframe="1h",
        start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 5, tzinfo=UTC),
        costs=Costs(), optimize=optimize, data_source="sim",
    )


def test_a_failing_trial_fails_its_run_and_the_parent(exploding_strategy):
    from backtesting.engine.optimize import Choice
    from backtesting.services import SweepFailed, sweep_execute

    parent = _parent(exploding_strategy)
    with pytest.raises(SweepFailed, match="trial exploded on purpose"):
        sweep_execute(parent=parent, method="grid", space={"boom": Choice((0, 1))},
                      distributed=False)
    parent.refresh_from_db()
    assert parent.status == "failed" and "trial exploded on purpose" in parent.error
    children = list(parent.children.all())
    assert len(children) == 2 and not {c.status for c in children} & {"pending", "running"}
    exploded = [c for c in children if c.params == {"boom": 1}]
    assert exploded and "RuntimeError: trial exploded on purpose" in exploded[0].error


def test_trials_no_worker_picks_up_are_failed_not_left_pending(exploding_strategy):
    from backtesting.engine.optimize import Choice, search
    from backtesting.services import SweepFailed, TaskEvaluator, run_fail

    parent = _parent(exploding_strategy)
    # Distributed with no qcluster running on the ORM broker: nothing ever runs the trials.
    evaluator = TaskEvaluator(parent, timeout=1.0, distributed=True)
    with pytest.raises(SweepFailed, match="unfinished after 1s"):
        search("grid", {"boom": Choice((0,))}, evaluator, "sharpe")
    run_fail(parent, "test: sweep gave up")
    statuses = set(BacktestRun.objects.values_list("status", flat=True))
    assert statuses == {"failed"}


def test_a_queued_sweep_whose_space_no_longer_parses_is_failed(exploding_strategy):
    from backtesting.services import BacktestInputError
    from backtesting.tasks import backtest_task

    parent = _parent(exploding_strategy)
    with pytest.raises(BacktestInputError, match="no parameter nope"):
        backtest_task(parent.pk, {"space": ["nope=1:2"]})
    parent.refresh_from_db()
    assert parent.status == "failed" and "nope" in parent.error


# ------------------------------------------------------------------ report paths


def _recorded_session(name: str):
    """An account with a recorded runtrader session (session_start event and trade ticks)."""
    from decimal import Decimal

    from marketdata.models import TradeTick
    from monitoring.models import SystemEvent
    from trading.models import Account

    account = Account.objects.create(name=name, initial_capital=Decimal(100000),
                                     cash=Decimal(100000))
    SystemEvent.objects.create(
        component="runtrader", kind="session_start", ts=datetime(2024, 1, 1, tzinfo=UTC),
        context={"account": name, "taker_fee_bps": "10", "maker_fee_bps": "10",
                 "cash": "100000", "positions": [], "symbols": ["BTC-USD"],
                 "timeframe": "1m", "feed": "sim"},
    )
    symbol, _ = Symbol.objects.get_or_create(name="BTC-USD", defaults={"base": "BTC",
                                                                       "quote": "USD"})
    start = datetime(2024, 1, 1, tzinfo=UTC)
    TradeTick.objects.bulk_create([
        TradeTick(symbol=symbol, venue="sim", trade_id=str(i + 1), ts=start + timedelta(seconds=i),
                  price=40_000.0 + i, size=0.1, side="buy")
        for i in range(120)
    ])
    return account, start


@pytest.mark.parametrize("name", ["../../evil", "../../../evil", "/tmp/evil", "a/../../b"])
def test_replay_report_named_after_the_account_stays_in_reports_dir(name, settings, tmp_path):
    reports = tmp_path / "a" / "b" / "reports"
    settings.REPORTS_DIR = reports
    _, start = _recorded_session(name)
    before = {p for p in tmp_path.rglob("*")}
    out = backtest("--replay-account", name, "--start", start.isoformat(),
                   "--end", (start + timedelta(minutes=5)).isoformat())
    new = {p for p in tmp_path.rglob("*")} - before
    files = {p for p in new if p.is_file()}
    assert {p for p in new if p.is_dir()} <= {tmp_path / "a", tmp_path / "a" / "b", reports}
    assert {p.suffix for p in files} == {".json", ".csv"}, out
    assert all(p.parent == reports and p.name.startswith("drift_") for p in files), files


def test_report_path_helper_refuses_to_leave_the_folder(settings, tmp_path):
    from backtesting.report_paths import report_path_in_reports_dir

    settings.REPORTS_DIR = tmp_path / "reports"
    root = (tmp_path / "reports").resolve()
    plain = report_path_in_reports_dir("drift_", "paper", ".json")
    assert plain == root / "drift_paper.json"  # safe names keep their readable file name
    a = report_path_in_reports_dir("drift_", "Paper", ".json")
    b = report_path_in_reports_dir("drift_", "paper ", ".json")
    assert len({plain, a, b}) == 3 and all(p.parent == root for p in (a, b))
    assert report_path_in_reports_dir("drift_", "..", ".json").parent == root
