"""Alerts: route events to people, deduplicate, rate-limit, escalate, acknowledge, resolve.

``alert_raise`` is called wherever something happens (risk events, task failures, the
watchers in ``monitoring.watch``). For each enabled ``AlertRule`` that matches it finds the
rule's open ``Alert`` with the same fingerprint (kind, account, symbol): a repeat within the
rule's cooldown is counted into it and not sent; otherwise an ``AlertDelivery`` is written in
the same transaction and handed to django-q2 once it commits (``alert_deliver``), so the caller
(the engine's database thread, a request) never waits on Slack or SMTP. A delivery that fails is
retried by ``alerts_tick`` with back-off up to ``MAX_ATTEMPTS`` and then stays failed, logged at
error level. ``alerts_tick`` (every minute) also escalates unacknowledged critical alerts.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring import metrics
from monitoring.channels.senders import DeliveryFailed, send
from monitoring.choices import AlertState, DeliveryStatus
from monitoring.engine.alerting import (
    Action,
    AlertEvent,
    RuleSpec,
    decide,
    escalation_due,
    fingerprint,
    render,
)
from monitoring.models import Alert, AlertDelivery, AlertRule
from monitoring.services import audit_record, model_state, to_jsonable

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BACKOFF = (timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=5))
TICK_SCHEDULE = "monitoring-alerts-tick"


def _spec(rule: AlertRule) -> RuleSpec:
    return RuleSpec(rule.pk, rule.source, rule.kind, rule.min_severity, rule.account, rule.symbol)


def alert_raise(
    *,
    kind: str,
    severity: str,
    message: str,
    source: str = "system",
    account: str = "",
    symbol: str = "",
    context: dict | None = None,
    now: datetime | None = None,
) -> int:
    """Route an alert event to the rules that match; return how many matched."""
    now = now or timezone.now()
    event = AlertEvent(source, kind, severity, message, account or "", symbol or "")
    context = to_jsonable(context or {})
    metrics.ALERTS_RAISED.labels(kind, severity).inc()
    logger.log(
        logging.CRITICAL if severity == "critical" else logging.WARNING,
        "alert",
        extra={
            "source": source,
            "kind": kind,
            "severity": severity,
            "alert": message,
            "account": account,
            "symbol": symbol,
            "context": context,
        },
    )
    rules = [r for r in AlertRule.objects.filter(enabled=True) if _spec(r).matches(event)]
    queued: list[int] = []
    with transaction.atomic():
        for rule in rules:
            delivery = _route(rule, event, context, now)
            if delivery is not None:
                queued.append(delivery.pk)
        if queued:
            transaction.on_commit(lambda: [_enqueue(pk) for pk in queued])
    return len(rules)


def _route(rule: AlertRule, event: AlertEvent, context: dict, now: datetime):
    """Count ``event`` into the rule's open alert; return a delivery to send, if any."""
    alert = _open_alert(rule, event, now)
    last_sent_at = alert.last_sent_at
    cooling = last_sent_at is not None and now - last_sent_at < timedelta(
        seconds=rule.cooldown_seconds
    )
    sent_last_hour = 0
    if not cooling and rule.max_per_hour:  # the count only matters when it could be sent
        sent_last_hour = AlertDelivery.objects.filter(
            alert__rule=rule,
            escalation=False,
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENT, DeliveryStatus.FAILED],
            created_at__gt=now - timedelta(hours=1),
        ).count()
    action = decide(
        now=now,
        last_sent_at=last_sent_at,
        cooldown_seconds=rule.cooldown_seconds,
        sent_last_hour=sent_last_hour,
        max_per_hour=rule.max_per_hour,
    )
    alert.occurrences += 1
    alert.last_seen = now
    alert.severity, alert.message, alert.context = event.severity, event.message, context
    if action is Action.COUNT:
        alert.deduplicated += 1
        metrics.ALERTS_DEDUPLICATED.labels(event.kind).inc()
        alert.save()
        return None
    if action is Action.SEND:
        alert.last_sent_at = now
    alert.save()
    status = DeliveryStatus.PENDING if action is Action.SEND else DeliveryStatus.RATE_LIMITED
    delivery = AlertDelivery.objects.create(
        alert=alert, channel=rule.channel, target=rule.target, status=status, created_at=now
    )
    if action is Action.RATE_LIMITED:
        metrics.ALERT_DELIVERIES.labels(rule.channel, "rate_limited").inc()
        return None
    return delivery


def _open_alert(rule: AlertRule, event: AlertEvent, now: datetime) -> Alert:
    """Return the rule's unresolved alert for ``event``, locked; open one if there is none.

    The insert is atomic in the database (one unresolved alert per rule and fingerprint): a
    process raising the same new alert at the same instant waits for the other's insert, fails
    on the constraint, and then counts into the alert the other opened.
    """
    mark = fingerprint(rule.pk, event)
    unresolved = (
        Alert.objects.select_for_update()
        .filter(rule=rule, fingerprint=mark)
        .exclude(state=AlertState.RESOLVED)
    )
    alert = unresolved.first()
    if alert is not None:
        return alert
    try:
        with transaction.atomic():  # a savepoint: the outer transaction survives a clash
            return Alert.objects.create(
                rule=rule,
                fingerprint=mark,
                source=event.source,
                kind=event.kind,
                severity=event.severity,
                account=event.account,
                symbol=event.symbol,
                message=event.message,
                first_seen=now,
                last_seen=now,
                occurrences=0,
            )
    except IntegrityError:
        return unresolved.get()


def _enqueue(delivery_id: int, attempts: int = 0) -> None:
    """Hand a delivery to django-q2, as its try after ``attempts`` earlier ones.

    A delivery that succeeds is not kept as a django-q2 result (``save=False``): its
    ``AlertDelivery`` row says it was sent and when; a failed one is still kept by django-q2.
    """
    from django_q.tasks import async_task

    async_task(
        "monitoring.alerts.alert_deliver",
        delivery_id,
        after_attempts=attempts,
        group="alerts",
        save=False,
    )


def alert_deliver(
    delivery_id: int, *, after_attempts: int | None = None, now: datetime | None = None
) -> str:
    """Send one delivery (the django-q2 task); return its status.

    ``after_attempts`` is how many tries the delivery had when this one was queued: a copy
    queued again while the first still waited (every minute's ``alerts_tick`` re-queues a
    failed delivery until its retry runs, and a busy queue runs them minutes later) finds the
    count moved on and sends nothing, so a retry is sent once and counts once.
    """
    with transaction.atomic():
        delivery = (
            AlertDelivery.objects.select_for_update().select_related("alert").get(pk=delivery_id)
        )
        if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.RATE_LIMITED):
            return delivery.status
        if after_attempts is not None and delivery.attempts != after_attempts:
            return delivery.status  # a copy of a try another task made (or is making)
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    alert = delivery.alert
    title, body = render(
        alert.kind,
        alert.severity,
        alert.message,
        alert.occurrences,
        alert.context,
        escalation=delivery.escalation,
    )
    data = {
        "alert_id": alert.pk,
        "kind": alert.kind,
        "severity": alert.severity,
        "account": alert.account,
        "symbol": alert.symbol,
        "escalation": int(delivery.escalation),
    }
    try:
        send(delivery.channel, delivery.target, title, body, data=data)
    except DeliveryFailed as exc:
        return _delivery_failed(delivery, str(exc))
    except Exception as exc:  # any sender bug is a failed delivery, retried and visible
        logger.exception("alert sender crashed")
        return _delivery_failed(delivery, f"{type(exc).__name__}: {exc}")
    delivery.status, delivery.sent_at, delivery.error = (
        DeliveryStatus.SENT,
        now or timezone.now(),
        "",
    )
    delivery.save(update_fields=["status", "sent_at", "error"])
    metrics.ALERT_DELIVERIES.labels(delivery.channel, "sent").inc()
    return delivery.status


def _delivery_failed(delivery: AlertDelivery, error: str) -> str:
    delivery.status, delivery.error = DeliveryStatus.FAILED, error[:2000]
    delivery.save(update_fields=["status", "error"])
    metrics.ALERT_DELIVERIES.labels(delivery.channel, "failed").inc()
    final = delivery.attempts >= MAX_ATTEMPTS
    (logger.error if final else logger.warning)(
        "alert delivery failed%s",
        " for good" if final else "; will retry",
        extra={
            "delivery": delivery.pk,
            "channel": delivery.channel,
            "error": error,
            "attempts": delivery.attempts,
        },
    )
    return delivery.status


def alerts_tick(*, now: datetime | None = None) -> dict[str, int]:
    """Escalate due critical alerts and retry failed deliveries (scheduled every minute)."""
    now = now or timezone.now()
    escalated = retried = 0
    queued: list[tuple[int, int]] = []  # (delivery, its attempts when queued)
    with transaction.atomic():
        candidates = (
            Alert.objects.select_for_update()
            .filter(
                state=AlertState.OPEN,
                severity="critical",
                escalated_at__isnull=True,
                rule__escalate_after_minutes__isnull=False,
            )
            .select_related("rule")
        )
        for alert in candidates:
            rule = alert.rule
            if not rule.escalation_channel or not escalation_due(
                now=now,
                severity=alert.severity,
                state=alert.state,
                first_seen=alert.first_seen,
                escalated_at=alert.escalated_at,
                escalate_after_minutes=rule.escalate_after_minutes,
            ):
                continue
            alert.escalated_at = now
            alert.save(update_fields=["escalated_at"])
            delivery = AlertDelivery.objects.create(
                alert=alert,
                channel=rule.escalation_channel,
                target=rule.escalation_target,
                escalation=True,
                created_at=now,
            )
            queued.append((delivery.pk, 0))
            escalated += 1
        for delivery in AlertDelivery.objects.filter(
            status=DeliveryStatus.FAILED, attempts__lt=MAX_ATTEMPTS
        ):
            wait = RETRY_BACKOFF[min(delivery.attempts, len(RETRY_BACKOFF)) - 1]
            if delivery.created_at + wait * delivery.attempts <= now:
                queued.append((delivery.pk, delivery.attempts))
                retried += 1
        if queued:
            transaction.on_commit(lambda: [_enqueue(pk, attempts) for pk, attempts in queued])
    return {"escalated": escalated, "retried": retried}


def _alert_change(alert: Alert, *, actor, state: str, now: datetime | None) -> Alert:
    """Move ``alert`` to ``state`` on behalf of ``actor``, audited."""
    now = now or timezone.now()
    name = actor.get_username() if getattr(actor, "is_authenticated", False) else str(actor)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        before = model_state(alert, ["state", "acknowledged_by", "resolved_by"])
        if alert.state == AlertState.RESOLVED:
            return alert
        if state == AlertState.ACKNOWLEDGED and alert.state == AlertState.OPEN:
            alert.state, alert.acknowledged_at, alert.acknowledged_by = state, now, name[:150]
        elif state == AlertState.RESOLVED:
            alert.state, alert.resolved_at, alert.resolved_by = state, now, name[:150]
        else:
            return alert
        alert.save()
        audit_record(
            actor=actor,
            action=f"alert_{state}",
            obj=alert,
            before=before,
            after=model_state(alert, ["state", "acknowledged_by", "resolved_by"]),
        )
    return alert


def alert_acknowledge(*, alert: Alert, actor, now: datetime | None = None) -> Alert:
    """Acknowledge an open alert: it no longer escalates; repeats are still counted."""
    return _alert_change(alert, actor=actor, state=AlertState.ACKNOWLEDGED, now=now)


def alert_resolve(*, alert: Alert, actor, now: datetime | None = None) -> Alert:
    """Resolve an alert: the next event of its kind opens (and sends) a new one."""
    return _alert_change(alert, actor=actor, state=AlertState.RESOLVED, now=now)


def alerts_schedule_ensure() -> bool:
    """Create the every-minute django-q2 schedule of ``alerts_tick``; True if created."""
    from monitoring.schedules import schedule_ensure

    return schedule_ensure(TICK_SCHEDULE, "monitoring.alerts.alerts_tick", every_minute=True)
