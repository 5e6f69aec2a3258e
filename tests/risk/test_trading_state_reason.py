"""A trading state's reason longer than its column is cut visibly, not mid-word in silence."""

from __future__ import annotations

import pytest

from risk.models import TradingState
from risk.services import RISK_ENGINE_ACTOR, trading_state_set
from tests.factories import AccountFactory


@pytest.mark.django_db
def test_a_long_reason_ends_with_an_ellipsis_and_a_short_one_is_kept_whole():
    account = AccountFactory(name="reason-acct")
    long = "strategy UserSma stopped: ZeroDivisionError in on_bar: the ETH-USD bar of " + "x" * 300
    trading_state_set(account=account, state="reducing", reason=long, actor=RISK_ENGINE_ACTOR)
    stored = TradingState.objects.get(account=account).reason
    assert len(stored) == 200
    assert stored.endswith("\u2026")
    assert stored[:-1] == long[:199]

    trading_state_set(account=account, state="active", reason="resumed", actor=RISK_ENGINE_ACTOR)
    assert TradingState.objects.get(account=account).reason == "resumed"
