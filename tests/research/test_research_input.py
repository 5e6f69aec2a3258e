"""``manage.py research`` refuses bad input with one clear error, before writing anything."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from backtesting.models import BacktestRun
from research.models import Finding, ResearchRun
from tests.research.test_research_command import WINDOW, research

pytestmark = pytest.mark.django_db  # one transaction per test: nothing here needs a commit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pairs", "--symbols", "AAA-USD", *WINDOW], "at least 2 distinct symbol"),
        (
            [
                "pairs",
                "--symbols",
                "AAA-USD,BBB-USD",
                "--start",
                "2024-02-01",
                "--end",
                "2024-01-01",
            ],
            "end must be after start",
        ),
        (["pairs", "--symbols", "AAA-USD,BBB-USD", "--start", "2024-01-01"], "--end is required"),
        (["pairs", "--symbols", "AAA-USD,BBB-USD", *WINDOW, "--alpha", "1.5"], "alpha"),
        (["pairs", "--symbols", "AAA-USD,BBB-USD", *WINDOW, "--correction", "x"], "correction"),
        (["patterns", "--symbols", "AAA-USD", *WINDOW, "--horizons", "1,x"], "--horizons"),
        (["patterns", "--symbols", "AAA-USD", *WINDOW, "--horizons", "0"], "horizons"),
        (["overfitting", "--symbols", "AAA-USD", *WINDOW], "--strategy"),
        (["overfitting", "--symbols", "AAA-USD", *WINDOW, "--strategy", "nope"], "nope"),
        (
            [
                "pairs",
                "--symbols",
                "AAA-USD,BBB-USD",
                "--timeframe",
                "7h",
                "--start",
                "2024-01-01",
                "--end",
                "2024-02-01",
            ],
            "timeframe",
        ),
        (["backtest", *WINDOW], "--finding"),
        (["backtest", *WINDOW, "--finding", "999"], "no finding #999"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        research(*args)
    assert not ResearchRun.objects.exists() and not BacktestRun.objects.exists()


def test_a_finding_without_a_strategy_cannot_be_backtested():
    run = ResearchRun.objects.create(kind="pattern")
    finding = Finding.objects.create(run=run, title="a pattern")
    with pytest.raises(CommandError, match="no strategy"):
        research("backtest", "--finding", str(finding.pk), *WINDOW)
