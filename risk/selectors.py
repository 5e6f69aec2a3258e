"""Reads for risk: events, limits and trading states."""

from __future__ import annotations

from django.db.models import Q

from risk.models import RiskEvent, RiskLimit, TradingState
from trading.models import Account


def risk_events_recent(*, limit: int = 50) -> list[RiskEvent]:
    """Return the most recent risk events."""
    return list(RiskEvent.objects.select_related("account").order_by("-ts")[:limit])


def risk_limits_enabled(*, account: Account | None = None) -> list[RiskLimit]:
    """Return enabled limits that apply to ``account`` (global ones plus its own)."""
    qs = RiskLimit.objects.filter(enabled=True)
    if account is not None:
        qs = qs.filter(Q(account__isnull=True) | Q(account=account))
    return list(qs.select_related("account"))


def trading_state_of(*, account: Account) -> str:
    """Return the account's trading state (active when none was ever set)."""
    state = TradingState.objects.filter(account=account).values_list("state", flat=True).first()
    return state or "active"
