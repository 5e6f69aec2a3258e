"""``backtest --strategy path/to/file.py:Class`` and ``--config NAME``; an --async run of a user
strategy executed by a real ``qcluster`` process started in another folder."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.models import BacktestRun
from tests.polling import wait_for
from tests.qcluster_process import qcluster_log, qcluster_start, qcluster_stop
from tests.trading.test_user_strategies import SIGNAL_SMA
from trading.engine import user_strategies
from trading.models import StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
BASE = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
        "--end", "2024-02-15", "--source", "sim", "--json"]


def backtest(*args: str) -> dict:
    out = StringIO()
    call_command("backtest", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture
def user_file(tmp_path):
    folder = tmp_path / "strategies"
    folder.mkdir()
    path = folder / "mine.py"
    path.write_text(SIGNAL_SMA)
    before = user_strategies.strategy_paths()
    user_strategies.set_strategy_paths([folder])
    yield path
    user_strategies.set_strategy_paths(before)


def test_a_user_strategy_by_path_runs_and_is_stored_by_its_absolute_path(user_file, monkeypatch):
    monkeypatch.chdir(user_file.parent)
    doc = backtest("--strategy", "mine.py:UserSma", "--param", "fast=5", "--param", "slow=20",
                   *BASE)
    run = BacktestRun.objects.get(pk=doc["run"])
    assert run.status == "completed" and run.strategy == f"{user_file.resolve()}:UserSma"
    assert run.params == {"fast": 5, "slow": 20} and run.metrics["trades"] > 0
    builtin = BacktestRun.objects.get(pk=backtest(
        "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20", *BASE)["run"])
    assert run.metrics["trades"] == builtin.metrics["trades"]
    assert run.metrics["final_equity"] == builtin.metrics["final_equity"]


def test_a_named_config_gives_strategy_params_and_symbols(user_file):
    StrategyConfig.objects.create(name="mine-fast", strategy_class="UserSma",
                                  params={"fast": 5, "slow": 20}, symbols=["ETH-USD"])
    doc = backtest("--config", "mine-fast", "--param", "slow=25", *BASE)
    run = BacktestRun.objects.get(pk=doc["run"])
    assert run.strategy == "UserSma" and run.params == {"fast": 5, "slow": 25}
    assert run.symbols == ["ETH-USD"] and run.status == "completed"
    with pytest.raises(CommandError, match="no enabled strategy config 'nope'.*mine-fast"):
        backtest("--config", "nope", *BASE)
    with pytest.raises(CommandError, match="unknown strategy 'Nope'"):
        backtest("--strategy", "Nope", *BASE)
    assert BacktestRun.objects.count() == 1  # bad input leaves nothing behind


def test_an_async_run_of_a_user_strategy_is_executed_by_a_qcluster_worker(
    user_file, subprocess_env, tmp_path
):
    env = {**subprocess_env, "Q_SYNC": "false", "SECRET_KEY": settings.SECRET_KEY,
           "STRATEGY_PATHS": str(tmp_path / "elsewhere")}  # the worker finds it by path only
    manage = str(ROOT / "manage.py")
    queued = subprocess.run(
        [sys.executable, manage, "backtest", "--strategy", "mine.py:UserSma", *BASE, "--async"],
        cwd=user_file.parent, env=env, capture_output=True, text=True, timeout=120,
    )
    assert queued.returncode == 0, queued.stderr[-2000:]
    run_id = json.loads(queued.stdout.strip().splitlines()[-1])["run"]
    assert BacktestRun.objects.get(pk=run_id).status == "pending"
    # The system checks (URL imports: the research stack) would double the worker's start and
    # prove nothing here; CI runs `manage.py check` on its own.
    worker = qcluster_start(env, tmp_path / "qcluster.log", cwd=tmp_path)
    try:
        wait_for(lambda: worker.poll() is not None or BacktestRun.objects.get(
            pk=run_id).status in {"completed", "failed"}, 120, "the worker to run the backtest")
    finally:
        hung = qcluster_stop(worker)  # SIGTERM to its main process only, as django-q2 expects
    err = qcluster_log(worker)
    assert hung is None, hung
    run = BacktestRun.objects.get(pk=run_id)
    assert run.status == "completed", (run.error, err[-2000:])
    assert run.strategy == f"{user_file.resolve()}:UserSma" and run.metrics["trades"] > 0


TYPED = (
    SIGNAL_SMA.replace(  # the template's parameters, narrowed, and a choice
        '''        "fast": IntParam(10, 2, 50, step=2),
        "slow": IntParam(30, 10, 200, step=10),
''',
        '''        "fast": IntParam(10, 5, 10, step=5),
        "slow": IntParam(30, 30, 40),
        "entry": ChoiceParam("cross", ("cross", "above")),
''',
    )
    .replace("import IntParam\n", "import ChoiceParam, IntParam\n")
    .replace("UserSma", "Typed")
)
assert "ChoiceParam(" in TYPED and "import ChoiceParam" in TYPED  # the template still fits


def test_declared_parameters_are_checked_and_are_what_a_sweep_searches(tmp_path):
    path = tmp_path / "typed.py"
    path.write_text(TYPED)
    from trading.engine.errors import StrategyConfigError
    from trading.engine.strategies import create_strategy

    spec = f"{path}:Typed"
    assert create_strategy(spec).params == {"fast": 10, "slow": 30, "entry": "cross",
                                            "fraction": 0.1, "lot": create_strategy(spec)._lot}
    with pytest.raises(StrategyConfigError, match="fast must be in 5..10, got 11"):
        create_strategy(spec, fast=11)
    with pytest.raises(StrategyConfigError, match="entry must be one of cross, above"):
        create_strategy(spec, entry="below")
    with pytest.raises(CommandError, match="fast must be a whole number"):
        backtest("--strategy", spec, "--param", "fast=7.5", *BASE)
    # No --space: the declared ranges (--space narrows one to keep the test short).
    short = [*BASE[:-5], "--end", "2024-01-08", "--source", "sim", "--json"]  # a week: 4 trials
    doc = backtest("--strategy", spec, "--optimize", "grid", "--space", "slow=30:30", *short)
    parent = BacktestRun.objects.get(pk=doc["run"])
    tried = sorted((c.params["fast"], c.params["entry"]) for c in parent.children.all())
    assert tried == [(5, "above"), (5, "cross"), (10, "above"), (10, "cross")]
    from backtesting.services import parse_space

    space = parse_space(spec, [])
    assert space["fast"].values() == [5, 10] and space["slow"].values() == list(range(30, 41))
    assert space["entry"].values() == ["cross", "above"]
