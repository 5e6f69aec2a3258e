"""Writes for risk: trading states, limit switches, default limits, event acknowledgement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from monitoring.services import alert_emit, audit_record, broadcast, model_state, to_jsonable
from risk.choices import LimitAction, LimitKind, LimitScope, TradingStateChoice
from risk.engine.events import ModeChangeRequest, RiskEventRecord
from risk.engine.limits import LimitSpec
from risk.models import RiskEvent, RiskLimit, TradingState
from trading.models import Account


def default_limit_specs() -> list[tuple[str, Decimal, str, str]]:
    """Return the product's default limits (kind, value, action, description) from settings."""
    return [
        (
            LimitKind.MAX_POSITION_PCT,
            settings.MAX_POSITION_SIZE_PCT,
            LimitAction.REDUCE,
            "Largest position as a fraction of equity (MAX_POSITION_SIZE_PCT)",
        ),
        (
            LimitKind.MAX_DAILY_LOSS_PCT,
            settings.MAX_DAILY_LOSS_PCT,
            LimitAction.REJECT,
            "Daily loss beyond which only risk-reducing orders pass (MAX_DAILY_LOSS_PCT)",
        ),
        (
            LimitKind.MAX_DRAWDOWN_PCT,
            settings.MAX_DRAWDOWN_PCT,
            LimitAction.HALT,
            "Drawdown from peak equity that fires the kill switch (MAX_DRAWDOWN_PCT)",
        ),
        (
            LimitKind.MAX_GROSS_EXPOSURE_PCT,
            Decimal("1.0"),
            LimitAction.REJECT,
            "Gross exposure as a fraction of equity",
        ),
        (LimitKind.MAX_OPEN_ORDERS, Decimal("50"), LimitAction.REJECT, "Working orders at once"),
        (
            LimitKind.PRICE_BAND_BPS,
            Decimal("500"),
            LimitAction.REJECT,
            "Limit price distance from mid (fat-finger guard)",
        ),
    ]


@transaction.atomic
def risk_limits_ensure_defaults(*, account: Account) -> int:
    """Create the default account-scoped limits that do not exist yet; return how many."""
    created = 0
    for kind, value, action, description in default_limit_specs():
        _, was_created = RiskLimit.objects.get_or_create(
            scope=LimitScope.ACCOUNT,
            account=account,
            scope_value="",
            kind=kind,
            defaults={"value": value, "action": action, "description": description},
        )
        created += was_created
    return created


def trading_state_ensure(*, account: Account) -> TradingState:
    """Return the account's trading state row, creating it as active if missing."""
    state, _ = TradingState.objects.get_or_create(
        account=account, defaults={"changed_at": timezone.now(), "reason": "created"}
    )
    return state


@transaction.atomic
def risk_limit_update(*, limit: RiskLimit, actor: Any, **changes: Any) -> RiskLimit:
    """Change fields of a limit and audit the before/after values."""
    before = model_state(limit)
    for field, value in changes.items():
        setattr(limit, field, value)
    limit.full_clean()
    limit.save()
    audit_record(
        actor=actor, action="risk_limit.update", obj=limit, before=before, after=model_state(limit)
    )
    return limit


@transaction.atomic
def trading_state_set(
    *, account: Account, state: str, reason: str, actor: Any, publish: bool = True
) -> TradingState:
    """Move an account to ``state`` (active, reducing or halted), audited and broadcast."""
    if state not in TradingStateChoice.values:
        raise ValueError(f"unknown trading state {state!r}")
    current, _ = TradingState.objects.select_for_update().get_or_create(
        account=account, defaults={"changed_at": timezone.now()}
    )
    before = {"state": current.state, "reason": current.reason}
    current.state = state
    # The column holds 200 characters; a longer reason (a strategy's error with its file, line
    # and bar) is cut with an ellipsis, visibly, and its risk event keeps the whole text.
    current.reason = reason if len(reason) <= 200 else reason[:199] + "\u2026"
    current.changed_by = actor if getattr(actor, "is_authenticated", False) else None
    current.changed_at = timezone.now()
    current.save()
    audit_record(
        actor=actor,
        action="trading_state.set",
        obj=current,
        before=before,
        after={"state": state, "reason": current.reason},
    )
    broadcast("risk", "state", {"account": account.name, "state": state, "reason": current.reason})
    if actor != RISK_ENGINE_ACTOR and before["state"] != state:
        manual_action_record(
            account=account, action=state, actor=actor, reason=current.reason, before=before
        )
    return current


RISK_ENGINE_ACTOR = "risk-engine"
# A person's halt, pause, resume or flatten: its risk event kind and severity. The engine's own
# changes (kill switch, daily loss) raise their events from its limits.
MANUAL_ACTIONS = {
    TradingStateChoice.HALTED: ("manual_halt", "critical"),
    TradingStateChoice.REDUCING: ("manual_reduce", "warning"),
    TradingStateChoice.ACTIVE: ("manual_resume", "warning"),
    "flatten": ("manual_flatten", "critical"),
}


def _actor_name(actor: Any) -> str:
    if getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return str(actor) if actor else "system"


def manual_action_record(
    *, account: Account, action: str, actor: Any, reason: str = "", before: dict | None = None
) -> RiskEvent:
    """Record a person's halt/resume/flatten as a risk event and alert on it (with who did it)."""
    kind, severity = MANUAL_ACTIONS[action]
    who = _actor_name(actor)
    verb = {"manual_reduce": "set to reduce-only", "manual_flatten": "flattened"}.get(
        kind, kind.removeprefix("manual_") + ("d" if kind.endswith("e") else "ed")
    )
    message = f"{account.name} {verb} by {who}" + (f": {reason}" if reason else "")
    context = {"account": account.name, "kind": kind, "by": who, "reason": reason}
    if before is not None:
        context["previous_state"] = before.get("state", "")
    event = RiskEvent.objects.create(
        ts=timezone.now(),
        account=account,
        kind=kind,
        severity=severity,
        message=message[:1000],
        context=to_jsonable(context),
    )
    alert_emit(source="risk", severity=severity, message=event.message, context=context)
    broadcast(
        "risk",
        "risk_event",
        {"account": account.name, "kind": kind, "severity": severity,
         "message": event.message, "ts": event.ts},
    )  # fmt: skip
    return event


@transaction.atomic
def risk_event_acknowledge(*, event: RiskEvent, actor: Any) -> RiskEvent:
    """Mark a risk event as acknowledged by ``actor``."""
    if not event.acknowledged:
        event.acknowledged = True
        event.acknowledged_by = actor if getattr(actor, "is_authenticated", False) else None
        event.acknowledged_at = timezone.now()
        event.save(update_fields=["acknowledged", "acknowledged_by", "acknowledged_at"])
        audit_record(
            actor=actor,
            action="risk_event.acknowledge",
            obj=event,
            before={"acknowledged": False},
            after={"acknowledged": True},
        )
    return event


def limit_spec_from_row(row: RiskLimit) -> LimitSpec:
    """Translate a ``RiskLimit`` row into the engine's ``LimitSpec``."""
    scope_value = row.account.name if row.scope == LimitScope.ACCOUNT else row.scope_value
    return LimitSpec(
        kind=row.kind,
        value=row.value,
        action=row.action,
        scope=row.scope,
        scope_value=scope_value,
        enabled=row.enabled,
        params=row.params or {},
    )


def _limits_for(account: Account):
    """Return the queryset of limits that concern ``account`` (global and its own)."""
    return RiskLimit.objects.filter(Q(account__isnull=True) | Q(account=account))


def limits_version(*, account: Account) -> tuple:
    """Return a cheap token that changes whenever a limit of ``account`` is added/edited/removed."""
    agg = _limits_for(account).aggregate(n=Count("id"), last=Max("updated_at"))
    return agg["n"], agg["last"]


def limit_specs_load(*, account: Account) -> list[LimitSpec]:
    """Return the enabled limits of ``account`` as engine specs."""
    rows = _limits_for(account).filter(enabled=True).select_related("account")
    return [limit_spec_from_row(row) for row in rows]


def risk_events_record(
    *, account: Account, records: list[RiskEventRecord], publish: bool = True
) -> list[RiskEvent]:
    """Persist engine risk events and alert on each; broadcast them on ``risk`` if ``publish``.

    The runtime publishes from its own loop and passes ``publish=False``.
    """
    if not records:
        return []
    now = timezone.now()
    rows = RiskEvent.objects.bulk_create(
        [
            RiskEvent(
                ts=r.ts or now,
                account=account,
                kind=r.limit_kind,
                severity=r.severity.value,
                message=r.message,
                context=to_jsonable(dict(r.context)),
            )
            for r in records
        ]
    )
    for row in rows:
        alert_emit(
            source="risk",
            severity=row.severity,
            message=row.message,
            context={"account": account.name, "kind": row.kind, **row.context},
        )
        if publish:
            broadcast(
                "risk",
                "risk_event",
                {
                    "account": account.name,
                    "kind": row.kind,
                    "severity": row.severity,
                    "message": row.message,
                    "ts": row.ts,
                },
            )
    return rows


def trading_mode_apply(
    *, account: Account, request: ModeChangeRequest, publish: bool = True
) -> TradingState:
    """Apply a mode change the risk engine asked for (audited as the risk engine)."""
    return trading_state_set(
        account=account,
        state=request.mode.value,
        reason=f"{request.limit_kind}: {request.reason}",
        actor=RISK_ENGINE_ACTOR,
        publish=publish,
    )
