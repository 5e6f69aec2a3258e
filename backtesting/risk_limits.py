"""The risk checks a backtest attaches: the ones ``runtrader`` would apply to an account.

A run stores a snapshot of them when it is created (``BacktestRun.risk``): where they came from,
the limits as engine specs and the account's buying power. A queued run or a sweep's trials
then use exactly what the user saw when asking, whatever is edited meanwhile.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backtesting.engine.errors import BacktestConfigError
from risk.engine.checks import RiskChecker
from risk.engine.limits import LimitScope, LimitSpec
from risk.models import RiskLimit
from risk.services import default_limit_specs, limit_spec_from_row, limit_specs_load
from trading.engine.buying_power import Margin
from trading.models import Account

OFF: dict[str, Any] = {"source": "off", "limits": []}


def risk_snapshot(*, account: str, explicit: bool) -> dict[str, Any]:
    """Return the limits and buying power ``runtrader --account account`` would apply.

    An account that does not exist yet gets what it would start with: the global limits plus
    the product's defaults, at 1x. ``explicit`` (the name was given, not defaulted) makes a
    missing account an error instead.
    """
    row = Account.objects.filter(name=account).first()
    if row is not None:
        specs = limit_specs_load(account=row)
        margin = row.margin()
        source = f"account {account}"
    elif explicit:
        raise BacktestConfigError(f"--risk-account: no account {account!r}")
    else:
        specs = _global_limits() + _default_limits(account)
        margin = Margin()
        source = f"defaults of a new account ({account!r} does not exist yet)"
    return {
        "source": source,
        "account": account,
        "limits": [spec_to_json(s) for s in specs],
        "leverage": str(margin.leverage),
        "buying_power": margin.policy.value,
    }


def _global_limits() -> list[LimitSpec]:
    rows = RiskLimit.objects.filter(account__isnull=True, enabled=True)
    return [limit_spec_from_row(row) for row in rows]


def _default_limits(account: str) -> list[LimitSpec]:
    return [
        LimitSpec(kind, value, action, LimitScope.ACCOUNT, account)
        for kind, value, action, _ in default_limit_specs()
    ]


def spec_to_json(spec: LimitSpec) -> dict[str, Any]:
    """Return a limit as JSON-friendly values (its value as a string: exact)."""
    return {
        "kind": spec.kind.value,
        "value": str(spec.value),
        "action": spec.action.value,
        "scope": spec.scope.value,
        "scope_value": spec.scope_value,
        "enabled": spec.enabled,
        "params": dict(spec.params),
    }


def risk_hook(snapshot: dict[str, Any], account: str) -> RiskChecker | None:
    """Return the pre-trade checks of a stored snapshot for the backtest's ``account``.

    Limits of the source account's own scope apply to the simulated account that stands in for
    it. No limits: no hook, so the run may use the sparse replay.
    """
    limits = snapshot.get("limits") or []
    if not limits:
        return None
    source = snapshot.get("account", "")
    specs = []
    for item in limits:
        spec = LimitSpec(**{**item, "value": Decimal(item["value"])})
        if spec.scope is LimitScope.ACCOUNT and spec.scope_value == source:
            spec = LimitSpec(**{**spec_to_json(spec), "value": spec.value, "scope_value": account})
        specs.append(spec)
    return RiskChecker(specs)


def snapshot_margin(snapshot: dict[str, Any]) -> tuple[Decimal, str]:
    """Return the (leverage, buying-power policy) a snapshot carries (1x, reduce without one)."""
    return Decimal(snapshot.get("leverage", "1")), snapshot.get("buying_power", "reduce")


__all__ = ["OFF", "risk_hook", "risk_snapshot", "snapshot_margin", "spec_to_json"]
