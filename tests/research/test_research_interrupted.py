"""A study whose strategy calls sys.exit() fails the command and the run (was exit 0, running)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from research.models import ResearchRun

pytestmark = pytest.mark.django_db(transaction=True)

STRATEGY = """
import sys

from trading.engine.params import IntParam
from trading.engine.strategy import Strategy


class Quits(Strategy):
    parameters = {"n": IntParam(1, 1, 5)}

    def on_bar(self, bar, ctx):
        sys.exit(0)
"""


def test_an_overfitting_study_whose_strategy_exits_is_failed(tmp_path):
    path = tmp_path / "quits.py"
    path.write_text(STRATEGY)
    # The runner takes a strategy's sys.exit() for its error: named with its file, line and bar.
    failed = r"research run #\d+ failed: strategy Quits raised SystemExit: 0 \(.*quits\.py, line 12"
    with pytest.raises(CommandError, match=failed):
        call_command(
            "research", "overfitting", "--strategy", f"{path}:Quits", "--space", "n=1,2",
            "--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
            "--end", "2024-01-10", "--source", "sim", "--no-report",
            stdout=StringIO(), stderr=StringIO(),
        )  # fmt: skip
    run = ResearchRun.objects.get()
    assert run.status == "failed" and "raised SystemExit: 0" in run.error
    assert run.finished_at is not None
