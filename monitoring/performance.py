"""Performance history: per-account and per-model figures stored as ``PerformanceMetric`` rows.

``performance_metrics_record`` runs daily on django-q2 (the ``monitoring-performance-daily``
schedule that ``bootstrap`` creates) and on demand (``manage.py metrics record``), so history
survives restarts; it also sets the Prometheus gauges that need the database (VaR/CVaR, live
model accuracy). Job metrics come from django-q2's worker signal.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from monitoring import metrics
from monitoring.models import PerformanceMetric

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "monitoring-performance-daily"
ACCURACY_WINDOW = 500  # most recent direction predictions judged per model


def _account_figures(account) -> dict[str, float | None]:
    """Return the account's figures from the risk report (stored positions at stored marks)."""
    from risk.selectors import risk_report

    report = risk_report(account=account)
    equity = Decimal(report["equity"])
    var = report["var"] or {}
    figures: dict[str, float | None] = {
        "equity": float(equity),
        "cash": float(report["cash"]),
        "total_pnl": float(equity - account.initial_capital),
        "drawdown": report["drawdown"]["current"] if report["drawdown"] else None,
        "var_95": var.get("historical_var_95"),
        "cvar_95": var.get("historical_cvar_95"),
    }
    return figures


def model_live_accuracy(model, window: int = ACCURACY_WINDOW) -> dict[str, float] | None:
    """Judge the model's last ``window`` direction predictions against the bars that followed.

    A prediction made on the bar starting at ``ts`` is resolved when the bar ``horizon`` bars
    later is stored: right when ``value > 0.5`` and that bar closed above the prediction bar's
    close. Returns accuracy, the always-up baseline on the same bars, and the count; None when
    nothing is resolved yet.
    """
    from marketdata.engine.events import TIMEFRAME_SECONDS
    from marketdata.models import Bar

    step = TIMEFRAME_SECONDS[model.timeframe]
    rows = list(
        model.predictions.filter(kind="direction")
        .order_by("-ts")
        .values_list("symbol_id", "ts", "horizon", "value")[:window]
    )
    if not rows:
        return None
    wanted = {(s, ts) for s, ts, _, _ in rows} | {
        (s, ts + timedelta(seconds=step * h)) for s, ts, h, _ in rows
    }
    closes = {
        (s, ts): c
        for s, ts, c in Bar.objects.filter(
            timeframe=model.timeframe,
            symbol_id__in={s for s, _ in wanted},
            ts__gte=min(ts for _, ts in wanted),
            ts__lte=max(ts for _, ts in wanted),
        ).values_list("symbol_id", "ts", "close")
    }
    right = up = resolved = 0
    for symbol, ts, horizon, value in rows:
        now, later = (
            closes.get((symbol, ts)),
            closes.get((symbol, ts + timedelta(seconds=step * horizon))),
        )
        if now is None or later is None or later == now:
            continue  # unresolved, or a flat bar that says nothing about direction
        resolved += 1
        went_up = later > now
        up += went_up
        right += (value > 0.5) == went_up
    if not resolved:
        return None
    return {"accuracy": right / resolved, "baseline": up / resolved, "resolved": float(resolved)}


def performance_metrics_record(*, now: datetime | None = None) -> int:
    """Store today's per-account and per-model figures; set their gauges. Return rows written."""
    from models_ml.models import MLModel
    from trading.models import Account

    now = now or timezone.now()
    rows: list[PerformanceMetric] = []
    for account in Account.objects.order_by("name"):
        figures = _account_figures(account)
        metrics.portfolio_set(account.name, figures)
        rows += [
            PerformanceMetric(
                ts=now, name=f"portfolio.{name}", value=value, labels={"account": account.name}
            )
            for name, value in figures.items()
            if value is not None
        ]
    for model in MLModel.objects.filter(active=True).order_by("name", "version"):
        judged = model_live_accuracy(model)
        if judged is None:
            continue
        label = str(model)
        metrics.ML_ACCURACY.labels(label).set(judged["accuracy"])
        metrics.ML_BASELINE.labels(label).set(judged["baseline"])
        metrics.ML_RESOLVED.labels(label).set(judged["resolved"])
        rows += [
            PerformanceMetric(ts=now, name=f"ml.{name}", value=value, labels={"model": label})
            for name, value in judged.items()
        ]
    with transaction.atomic():
        PerformanceMetric.objects.bulk_create(rows)
    logger.info("performance metrics recorded", extra={"rows": len(rows)})
    return len(rows)


def performance_schedule_ensure() -> bool:
    """Create the daily django-q2 schedule of ``performance_metrics_record``; True if created."""
    from monitoring.schedules import schedule_ensure

    return schedule_ensure(SCHEDULE_NAME, "monitoring.performance.performance_metrics_record")


def jobs_queue_depth_refresh() -> int | None:
    """Set the queue-depth gauge from the django-q2 broker; None when it cannot be read."""
    from django_q.brokers import get_broker

    try:
        depth = get_broker().queue_size()
    except Exception:  # a broker that cannot answer must not break /metrics; it is logged
        logger.warning("django-q2 queue size unavailable", exc_info=True)
        return None
    metrics.JOB_QUEUE_DEPTH.set(depth)
    return depth


def job_finished(sender, func=None, task: dict | None = None, **kwargs) -> None:
    """django-q2 ``post_execute_in_worker``: time the task; count (and alert on) a failure."""
    task = task or {}
    name = str(task.get("func", getattr(func, "__name__", "unknown")))[:120]
    started, stopped = task.get("started"), task.get("stopped")
    if started is not None and stopped is not None:
        metrics.JOB_DURATION.labels(name).observe(max((stopped - started).total_seconds(), 0.0))
    if task.get("success"):
        return
    metrics.JOB_FAILURES.labels(name).inc()
    from monitoring.alerts import alert_raise

    # A synchronous task signals from inside its except block, before a result is stored.
    current = sys.exc_info()[1]
    error = str(task.get("result") or (f"{type(current).__name__}: {current}" if current else ""))
    alert_raise(
        source="jobs",
        kind="task_failure",
        severity="error",
        message=f"task {name} failed: {error.strip().splitlines()[0][:300] if error else ''}",
        context={"task": str(task.get("id", "")), "func": name},
    )
