"""A grid holding a set a strategy refuses is one clear error before any run row is written."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.models import BacktestRun

pytestmark = pytest.mark.django_db(transaction=True)
RANGE = ["--start", "2024-01-01", "--end", "2024-01-20", "--optimize", "grid", "--source", "sim"]


@pytest.mark.parametrize(
    ("strategy", "space", "message"),
    [
        ("rsi_reversion", "period=0:14:7", "period must be >= 1"),
        ("rsi_reversion", "period=-7:7:7", "period must be >= 1"),
        ("rsi_reversion", "upper=60:100:20", "need 0 < lower < upper < 100"),
        ("bollinger_breakout", "period=1:3", "period must be >= 2"),
        ("bollinger_breakout", "k=0.0:1.0:0.5", "need k > 0"),
        ("sma_cross", "fast=0:5:5", "fast must be >= 1"),
        ("sma_cross", "allow_short=yes,no", "allow_short must be true or false"),
    ],
)
def test_a_grid_with_a_refused_set_fails_up_front(strategy, space, message):
    with pytest.raises(CommandError, match=re.escape(message)) as caught:
        call_command(
            "backtest", "--strategy", strategy, *RANGE, "--space", space, stdout=StringIO()
        )
    assert "\n" not in str(caught.value)
    assert not BacktestRun.objects.exists(), "refused before the first trial, not at it"
