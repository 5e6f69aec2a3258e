"""Reads for risk: events, limits, sizing policies and trading states."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

import numpy as np
from django.db.models import Count, Max, Q
from django.utils import timezone

from marketdata.models import Bar
from risk.engine.errors import InsufficientDataError
from risk.engine.monitors import drawdown_stats, exposure_by_symbol, portfolio_pnl, var_report
from risk.engine.sizing import SizingPolicy as SizingRule
from risk.models import RiskEvent, RiskLimit, SizingPolicy, TradingState
from trading.choices import OPEN_ORDER_STATUSES
from trading.engine.hooks import PositionView
from trading.models import Account


def risk_events_recent(*, user, limit: int = 50) -> list[RiskEvent]:
    """Return the most recent risk events ``user`` may see (events of no account: staff only)."""
    events = RiskEvent.objects.select_related("account").order_by("-ts")
    if not (user.is_staff or user.is_superuser):
        events = events.filter(account__in=Account.objects.visible_to(user))
    return list(events[:limit])


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


def _minute_bars(sid: int):
    """Return a symbol's 1m bars of one origin: venue bars, or the simulated market's when it
    has none (a paper account on the simulated market): never a series mixing both."""
    bars = Bar.objects.filter(symbol_id=sid, timeframe="1m")
    real = bars.filter(simulated=False)
    return real if real.exists() else bars.filter(simulated=True)


def _marks(symbol_ids: list[int]) -> dict[int, Decimal]:
    """Return the latest 1m close per symbol id."""
    marks = {}
    for sid in symbol_ids:
        close = _minute_bars(sid).order_by("-ts").values_list("close", flat=True).first()
        if close is not None:
            marks[sid] = Decimal(str(close))
    return marks


def _returns(symbols: dict[int, str], bars: int) -> dict[str, np.ndarray]:
    """Return recent 1m simple returns per symbol name (oldest first)."""
    out = {}
    for sid, name in symbols.items():
        closes = list(
            _minute_bars(sid).order_by("-ts").values_list("close", flat=True)[: bars + 1]
        )[::-1]
        if len(closes) > 2:
            arr = np.asarray(closes, dtype=float)
            out[name] = arr[1:] / arr[:-1] - 1.0
    return out


def account_positions_view(*, account: Account) -> dict[str, PositionView]:
    """Return the account's open positions marked at the latest bar (or their own mark)."""
    positions = list(account.positions.exclude(quantity=0).select_related("symbol"))
    marks = _marks([p.symbol_id for p in positions])
    return {
        p.symbol.name: PositionView(
            p.symbol.name,
            p.quantity,
            p.average_price,
            marks.get(p.symbol_id) or p.mark_price or p.average_price,
        )
        for p in positions
    }


def _limit_usage(
    kind: str,
    *,
    equity: Decimal,
    positions: dict,
    open_orders: int,
    daily_loss: float | None,
    drawdown: float | None,
) -> float | None:
    """Return how much of a limit is used now (same unit as the limit), when it is measurable."""
    values = [abs(p.market_value) for p in positions.values()]
    usage = {
        "max_position_pct": float(max(values, default=0) / equity) if equity > 0 else None,
        "max_gross_exposure_pct": float(sum(values, Decimal(0)) / equity) if equity > 0 else None,
        "max_net_exposure_pct": (
            float(abs(sum((p.market_value for p in positions.values()), Decimal(0))) / equity)
            if equity > 0
            else None
        ),
        "max_open_orders": float(open_orders),
        "max_daily_loss_pct": daily_loss,
        "max_drawdown_pct": drawdown,
    }
    return usage.get(kind)


def risk_report(*, account: Account, return_bars: int = 1440) -> dict:
    """Return exposures, VaR/CVaR, drawdown, limit utilisation and trading state of ``account``."""
    positions = account_positions_view(account=account)
    equity = account.cash + sum((p.market_value for p in positions.values()), Decimal(0))
    snapshots = list(account.snapshots.order_by("ts").values_list("ts", "equity"))
    curve = [float(e) for _, e in snapshots] + [float(equity)]
    dd = drawdown_stats(curve) if curve[0] > 0 else None
    today = [float(e) for ts, e in snapshots if ts.date() == timezone.now().date()]
    daily_loss = max(0.0, 1 - float(equity) / today[0]) if today and today[0] > 0 else 0.0
    report = {
        "account": account.name,
        "mode": account.mode,
        "state": trading_state_of(account=account),
        "cash": account.cash,
        "equity": equity,
        "exposure": exposure_by_symbol(positions, equity) if equity > 0 else {},
        "drawdown": {"current": dd.current, "maximum": dd.maximum} if dd else None,
        "var": None,
        "limits": [],
    }
    exposures = {s: p.market_value for s, p in positions.items()}
    returns = _returns(
        {
            p.symbol_id: p.symbol.name
            for p in account.positions.exclude(quantity=0).select_related("symbol")
        },
        return_bars,
    )
    try:
        pnl = portfolio_pnl(exposures, returns)
        report["var"] = asdict(var_report(pnl)) if pnl.size >= 20 else None
    except InsufficientDataError:
        report["var"] = None
    open_orders = account.orders.filter(status__in=OPEN_ORDER_STATUSES).count()
    for limit in risk_limits_enabled(account=account):
        used = _limit_usage(
            limit.kind,
            equity=equity,
            positions=positions,
            open_orders=open_orders,
            daily_loss=daily_loss,
            drawdown=dd.current if dd else None,
        )
        report["limits"].append(
            {
                "kind": limit.kind,
                "scope": limit.scope,
                "value": limit.value,
                "used": used,
                "utilisation": (used / float(limit.value))
                if used is not None and limit.value
                else None,
                "action": limit.action,
            }
        )
    return report


def lot_sizes() -> dict[str, Decimal]:
    """Return every symbol's lot size (the risk checker rounds reduced orders to it)."""
    from marketdata.models import Symbol

    return dict(Symbol.objects.values_list("name", "lot_size"))


def sizing_policies_version(*, account: Account) -> tuple:
    """Return a token that changes whenever a sizing policy of ``account`` is edited."""
    agg = SizingPolicy.objects.filter(account=account).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    return agg["n"], agg["last"]


def sizing_rule_from_row(row: SizingPolicy) -> SizingRule:
    """Translate a ``SizingPolicy`` row into the engine's rule."""
    return SizingRule(
        method=row.method,
        fraction=row.fraction,
        target_volatility=row.target_volatility,
        lookback=row.lookback,
        kelly_multiplier=row.kelly_multiplier,
    )


def sizing_rules_for(*, account: Account) -> tuple[SizingRule, dict[str, SizingRule]]:
    """Return the account's default rule and its per-strategy rules (enabled rows only)."""
    default = SizingRule()
    by_strategy: dict[str, SizingRule] = {}
    for row in SizingPolicy.objects.filter(account=account, enabled=True):
        if row.strategy:
            by_strategy[row.strategy] = sizing_rule_from_row(row)
        else:
            default = sizing_rule_from_row(row)
    return default, by_strategy
