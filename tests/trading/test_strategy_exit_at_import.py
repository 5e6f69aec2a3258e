"""A strategy file calling ``sys.exit()`` while it is imported is a clear error naming the file.

It used to escape the loader as SystemExit: ``backtest`` and ``runtrader`` exited 0 with nothing
done and nothing said.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from trading.engine import user_strategies
from trading.engine.errors import StrategyConfigError

EXITS = "import sys\n\nsys.exit(0)\n"


@pytest.fixture
def exiting_file(tmp_path):
    path = tmp_path / "exits_at_import.py"
    path.write_text(EXITS)
    return path


def test_sys_exit_at_import_is_a_strategy_config_error_naming_file_and_line(exiting_file):
    with pytest.raises(StrategyConfigError, match=r"exits_at_import\.py failed to import: line 3"):
        user_strategies.load_module(exiting_file)
    with pytest.raises(StrategyConfigError, match="SystemExit"):  # not cached as a good import
        user_strategies.load_spec(f"{exiting_file}:X")


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["backtest", "runtrader"])
def test_backtest_and_runtrader_refuse_it_with_an_error(command, exiting_file):
    args = ["--strategy", f"{exiting_file}:X", "--symbols", "BTC-USD"]
    if command == "backtest":
        args += ["--start", "2024-01-01", "--end", "2024-01-02", "--source", "sim", "--no-risk"]
    else:
        args += ["--paper", "--duration", "1"]
    with pytest.raises(CommandError, match=r"exits_at_import\.py failed to import.*SystemExit"):
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
