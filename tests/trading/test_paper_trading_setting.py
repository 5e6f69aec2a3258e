"""``PAPER_TRADING`` decides whether ``runtrader`` without --paper/--live trades on paper."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def runtrader(*args: str) -> None:
    call_command("runtrader", *args, stdout=StringIO(), stderr=StringIO())


def test_without_paper_trading_the_mode_must_be_said(settings) -> None:
    settings.PAPER_TRADING = False
    with pytest.raises(CommandError, match="PAPER_TRADING=false.*--paper or --live"):
        runtrader("--speed", "-1")
    # Said explicitly, the flags are judged on (here: the bad speed is what stops it).
    with pytest.raises(CommandError) as caught:
        runtrader("--paper", "--speed", "-1")
    assert "PAPER_TRADING" not in str(caught.value) and "--speed" in str(caught.value)


def test_paper_is_the_default_while_paper_trading_is_on(settings) -> None:
    settings.PAPER_TRADING = True
    with pytest.raises(CommandError) as caught:
        runtrader("--speed", "-1")
    assert "PAPER_TRADING" not in str(caught.value) and "--speed" in str(caught.value)


@pytest.mark.parametrize("limit", ["abc", "0", "-5", "inf"])
def test_a_bad_write_outage_limit_is_refused_before_anything_starts(monkeypatch, limit) -> None:
    monkeypatch.setenv("RRR_WRITE_OUTAGE_LIMIT", limit)
    with pytest.raises(CommandError, match="outage limit|RRR_WRITE_OUTAGE_LIMIT"):
        runtrader("--paper", "--duration", "1")
