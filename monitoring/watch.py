"""Watchers that turn what is stored into alerts (django-q2, every minute; the summary daily).

Each check reads the database over a window ending at ``now`` and calls ``alert_raise``; the
alert's cooldown keeps a condition that lasts from being resent every minute.

- ``heartbeat_missing``: a ``runtrader`` whose last heartbeat says running is silent for more
  than ``HEARTBEAT_STALE``.
- ``feed_stale``: its last two heartbeats show the same event count (no market data between).
- ``reject_burst``: ``ALERT_REJECT_BURST`` or more rejected orders in 5 minutes.
- ``quarantine_burst``: ``ALERT_QUARANTINE_BURST`` or more quarantined events in 5 minutes.
- ``large_fill``: a fill worth more than ``ALERT_LARGE_FILL_PCT`` of the account's equity.
- ``model_drift``: an active model's live accuracy below its always-up baseline (50+ resolved).
- ``daily_pnl_summary`` (daily): each account's equity and P&L over the last day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from monitoring.alerts import alert_raise

HEARTBEAT_STALE = timedelta(seconds=90)
BURST_WINDOW = timedelta(minutes=5)
WATCH_SCHEDULE = "monitoring-watch"
SUMMARY_SCHEDULE = "monitoring-daily-summary"
DRIFT_MIN_RESOLVED = 50


def _heartbeats(now: datetime) -> dict[str, list]:
    """Return the last two heartbeats of each account seen in the last day, newest first."""
    from monitoring.models import SystemEvent

    beats: dict[str, list] = {}
    rows = SystemEvent.objects.filter(
        component="runtrader", kind="heartbeat", ts__gte=now - timedelta(days=1)
    ).order_by("-ts")[:2000]
    for row in rows:
        account = str(row.context.get("account", ""))
        if len(beats.setdefault(account, [])) < 2:
            beats[account].append(row)
    return beats


def check_engines(now: datetime) -> int:
    """Alert on silent engines and on engines whose feed stopped delivering."""
    raised = 0
    for account, (last, *previous) in _heartbeats(now).items():
        if last.context.get("status") not in ("running", "degraded"):
            continue  # stopped cleanly
        age = (now - last.ts).total_seconds()
        if age > HEARTBEAT_STALE.total_seconds():
            raised += alert_raise(
                source="trading",
                kind="heartbeat_missing",
                severity="critical",
                account=account,
                message=f"runtrader for {account} has sent no heartbeat for {age:.0f} s",
                context={"last_heartbeat": last.ts},
                now=now,
            )
        elif previous and last.context.get("events") == previous[0].context.get("events"):
            raised += alert_raise(
                source="marketdata",
                kind="feed_stale",
                severity="error",
                account=account,
                message=f"runtrader for {account} received no market data between its last "
                f"two heartbeats ({previous[0].ts:%H:%M:%S} to {last.ts:%H:%M:%S})",
                context={"events": last.context.get("events")},
                now=now,
            )
    return raised


def check_bursts(now: datetime) -> int:
    """Alert on bursts of rejected orders (per account) and quarantined data (per source)."""
    from django.db.models import Count

    from marketdata.models import DataQualityEvent
    from trading.models import Order

    since = now - BURST_WINDOW
    raised = 0
    rejects = (
        Order.objects.filter(status="rejected", updated_at__gt=since, updated_at__lte=now)
        .values("account__name")
        .annotate(n=Count("id"))
    )
    for row in rejects:
        if row["n"] >= settings.ALERT_REJECT_BURST:
            raised += alert_raise(
                source="trading",
                kind="reject_burst",
                severity="error",
                account=row["account__name"],
                message=f"{row['n']} orders rejected in the last 5 minutes",
                now=now,
            )
    quarantined = (
        DataQualityEvent.objects.filter(verdict="quarantine", ts__gt=since, ts__lte=now)
        .values("source")
        .annotate(n=Count("id"))
    )
    for row in quarantined:
        if row["n"] >= settings.ALERT_QUARANTINE_BURST:
            raised += alert_raise(
                source="marketdata",
                kind="quarantine_burst",
                severity="warning",
                message=f"{row['n']} {row['source']} events quarantined in the last 5 minutes",
                context={"source": row["source"]},
                now=now,
            )
    return raised


def check_large_fills(now: datetime, window: timedelta = timedelta(minutes=1)) -> int:
    """Alert on each fill in the last ``window`` worth more than the threshold of equity."""
    from trading.models import Fill

    raised = 0
    threshold = Decimal(str(settings.ALERT_LARGE_FILL_PCT))
    fills = Fill.objects.filter(ts__gt=now - window, ts__lte=now).select_related(
        "account", "symbol"
    )
    for fill in fills:
        notional = fill.quantity * fill.price
        equity = _equity(fill.account)
        if equity > 0 and notional / equity >= threshold:
            raised += alert_raise(
                source="trading",
                kind="large_fill",
                severity="warning",
                account=fill.account.name,
                symbol=fill.symbol.name,
                message=f"{fill.side} {fill.quantity} {fill.symbol.name} at {fill.price}: "
                f"{notional / equity:.1%} of equity",
                context={"order": fill.order_id, "notional": notional},
                now=now,
            )
    return raised


def _equity(account) -> Decimal:
    snapshot = account.snapshots.order_by("-ts").first()
    return snapshot.equity if snapshot is not None else account.cash


def check_models(now: datetime) -> int:
    """Alert when an active model's live accuracy falls below its always-up baseline."""
    from models_ml.models import MLModel
    from monitoring.performance import model_live_accuracy

    raised = 0
    for model in MLModel.objects.filter(active=True):
        judged = model_live_accuracy(model)
        if judged is None or judged["resolved"] < DRIFT_MIN_RESOLVED:
            continue
        if judged["accuracy"] < judged["baseline"]:
            raised += alert_raise(
                source="ml",
                kind="model_drift",
                severity="warning",
                message=f"{model}: live accuracy {judged['accuracy']:.1%} below the always-up "
                f"baseline {judged['baseline']:.1%} over {judged['resolved']:.0f} predictions",
                context={"model": str(model)},
                now=now,
            )
    return raised


def watch(*, now: datetime | None = None) -> int:
    """Run every watcher once (the every-minute schedule); return how many rules matched."""
    now = now or timezone.now()
    return check_engines(now) + check_bursts(now) + check_large_fills(now) + check_models(now)


def daily_summary(*, now: datetime | None = None) -> int:
    """Send each account's equity and P&L over the last day (the daily schedule)."""
    from trading.models import Account

    now = now or timezone.now()
    raised = 0
    for account in Account.objects.order_by("name"):
        snapshots = account.snapshots.filter(ts__lte=now).order_by("-ts")
        last = snapshots.first()
        start = snapshots.filter(ts__lte=now - timedelta(days=1)).first()
        equity = last.equity if last else account.cash
        base = start.equity if start else account.initial_capital
        pnl = equity - base
        raised += alert_raise(
            source="trading",
            kind="daily_pnl_summary",
            severity="info",
            account=account.name,
            message=f"{account.name}: equity {equity:.2f}, P&L over the day {pnl:+.2f} "
            f"({pnl / base:+.2%}), since start {equity - account.initial_capital:+.2f}"
            if base
            else f"{account.name}: equity {equity:.2f}",
            context={"equity": equity, "daily_pnl": pnl},
            now=now,
        )
    return raised


def watch_schedule_ensure() -> bool:
    """Create the watcher (every minute) and daily summary schedules; True if any was created."""
    from monitoring.schedules import schedule_ensure

    watch_created = schedule_ensure(WATCH_SCHEDULE, "monitoring.watch.watch", every_minute=True)
    summary_created = schedule_ensure(SUMMARY_SCHEDULE, "monitoring.watch.daily_summary")
    return watch_created or summary_created
