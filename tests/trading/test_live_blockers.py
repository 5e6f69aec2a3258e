"""``runtrader --live`` names what live trading is missing, in terms of what live needs."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from trading.models import Account, Fill


def refusal(*args: str) -> str:
    with pytest.raises(CommandError) as refused:
        call_command("runtrader", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return str(refused.value)


def test_live_on_the_paper_account_names_what_live_needs_not_paper_keys(paper):
    message = refusal("--live", "--account", "paper", "--duration", "5")
    assert message.startswith("refusing to trade live: ")
    assert "PAPER" not in message  # there are no paper API keys to set
    assert "LIVE_TRADING is not true" in message
    assert "the account is in paper mode, not live" in message
    assert (
        "account venue 'paper' is not a live exchange: live trading needs an account on "
        "binance, coinbase or kraken (mode live) and that exchange's API key and secret "
        "(BINANCE_API_KEY and BINANCE_API_SECRET, or COINBASE_..., KRAKEN_...)"
    ) in message
    assert not Fill.objects.exists()


def test_live_on_a_live_exchange_account_without_keys_names_that_exchange_s_keys(paper, settings):
    settings.LIVE_TRADING = True
    settings.KRAKEN_API_KEY, settings.KRAKEN_API_SECRET = "", ""
    Account.objects.create(name="main", mode="live", venue="kraken", initial_capital=1000,
                           cash=1000)  # fmt: skip
    message = refusal("--live", "--account", "main", "--duration", "5")
    assert message == "refusing to trade live: KRAKEN API key and secret are not both set"
