"""Writes for monitoring: audit rows, system events and Channels broadcasts."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone

from monitoring.choices import Severity
from monitoring.models import AuditLog, SystemEvent

logger = logging.getLogger(__name__)


def to_jsonable(value: Any) -> Any:
    """Convert Decimals, datetimes, UUIDs and model instances into JSON-safe values."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def model_state(obj: models.Model, fields: list[str] | None = None) -> dict:
    """Return a JSON-safe dict of an instance's concrete field values."""
    names = fields or [f.attname for f in obj._meta.concrete_fields]
    return {name: to_jsonable(getattr(obj, name)) for name in names}


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model,
    before: dict | None,
    after: dict | None,
) -> AuditLog:
    """Append an audit row: who did what to which object, with before/after values."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    actor_repr = user.get_username() if user else (str(actor) if actor else "system")
    entry = AuditLog.objects.create(
        actor=user,
        actor_repr=actor_repr,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )
    logger.info(
        "audit",
        extra={
            "action": action,
            "object": entry.object_type,
            "id": entry.object_id,
            "actor": actor_repr,
        },
    )
    return entry


def system_event_record(
    *,
    component: str,
    kind: str,
    message: str = "",
    severity: str = Severity.INFO,
    context: dict | None = None,
) -> SystemEvent:
    """Store a system event (heartbeat, start/stop, fault)."""
    return SystemEvent.objects.create(
        ts=timezone.now(),
        component=component,
        kind=kind,
        severity=severity,
        message=message,
        context=to_jsonable(context or {}),
    )


def broadcast(group: str, kind: str, data: dict) -> None:
    """Publish ``data`` on stream channel ``group`` once the current transaction commits.

    The same as ``monitoring.realtime.publish`` (docs/websocket.md), kept for its callers.
    """
    from monitoring.realtime import publish

    publish(group, kind, data)


def alert_emit(*, source: str, severity: str, message: str, context: dict | None = None) -> int:
    """Raise an alert from ``source``: its kind, account and symbol are read from ``context``.

    Routing, deduplication and delivery live in ``monitoring.alerts.alert_raise``; this keeps
    the callers' signature. Returns how many rules matched.
    """
    from monitoring.alerts import alert_raise

    context = dict(context or {})
    return alert_raise(
        source=source,
        kind=str(context.get("kind") or source),
        severity=severity,
        message=message,
        account=str(context.get("account") or ""),
        symbol=str(context.get("symbol") or ""),
        context=context,
    )
