"""PerformanceMetric history, live model accuracy, job metrics and the schedules bootstrap adds."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task
from prometheus_client import REGISTRY

from marketdata.models import Bar, Symbol
from models_ml.models import MLModel, Prediction
from monitoring.models import Alert, AlertRule, PerformanceMetric
from monitoring.performance import model_live_accuracy, performance_metrics_record


def sample(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def failing_task(message: str) -> None:
    """A task that fails (the job metrics test)."""
    raise RuntimeError(message)


def passing_task() -> int:
    """A task that succeeds."""
    return 1


@pytest.mark.django_db
def test_record_stores_account_figures_and_sets_the_gauges(paper):
    written = performance_metrics_record(now=datetime(2026, 1, 1, tzinfo=UTC))
    rows = {m.name: m.value for m in PerformanceMetric.objects.filter(labels__account=paper.name)}
    assert written >= 3
    assert rows["portfolio.equity"] == float(paper.cash)
    assert rows["portfolio.total_pnl"] == float(paper.cash - paper.initial_capital)
    assert sample("rrr_portfolio_equity", account=paper.name) == float(paper.cash)


@pytest.mark.django_db
def test_live_accuracy_judges_resolved_predictions_against_later_bars():
    symbol = Symbol.objects.create(name="ACC-USD", base="ACC", quote="USD")
    model = MLModel.objects.create(
        name="acc",
        model_type="lstm",
        version=1,
        artifact_path="/nowhere",
        symbols=["ACC-USD"],
        timeframe="1m",
        trained_at=timezone.now(),
        active=True,
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    closes = [100, 101, 100, 102, 103, 103]  # up, down, up, up, flat
    for i, close in enumerate(closes):
        Bar.objects.create(
            symbol=symbol,
            timeframe="1m",
            ts=t0 + timedelta(minutes=i),
            open=close,
            high=close,
            low=close,
            close=close,
            volume=1,
        )
    calls = [0.9, 0.8, 0.7, 0.2, 0.6, 0.9]  # right, wrong, right, wrong, flat, unresolved
    for i, p in enumerate(calls):
        Prediction.objects.create(
            model=model,
            symbol=symbol,
            ts=t0 + timedelta(minutes=i),
            kind="direction",
            horizon=1,
            value=p,
        )
    judged = model_live_accuracy(model)
    assert judged == {"accuracy": 0.5, "baseline": 0.75, "resolved": 4.0}
    performance_metrics_record()
    assert sample("rrr_ml_live_accuracy", model=str(model)) == 0.5
    assert sample("rrr_ml_live_baseline_accuracy", model=str(model)) == 0.75


@pytest.mark.django_db(transaction=True)
def test_tasks_are_timed_and_a_failure_is_counted_and_alerted():
    AlertRule.objects.create(name="jobs", source="*", kind="task_failure", channel="log")
    func = "tests.monitoring.test_performance.failing_task"
    before = sample("rrr_job_failures_total", func=func) or 0
    async_task("tests.monitoring.test_performance.passing_task")
    with pytest.raises(RuntimeError):
        async_task(func, "disk full")  # sync mode re-raises after the worker signal
    assert sample("rrr_job_failures_total", func=func) == before + 1
    passing = "tests.monitoring.test_performance.passing_task"
    assert sample("rrr_job_duration_seconds_count", func=passing) >= 1
    assert "disk full" in Alert.objects.get(kind="task_failure").message


@pytest.mark.django_db
def test_bootstrap_schedules_the_daily_record_and_the_alert_tick():
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))  # idempotent
    names = set(Schedule.objects.values_list("name", flat=True))
    assert {"monitoring-performance-daily", "monitoring-alerts-tick"} <= names
    assert Schedule.objects.get(name="monitoring-performance-daily").schedule_type == "D"


@pytest.mark.django_db
def test_metrics_command_records_on_demand(paper, capsys):
    call_command("metrics", "record")
    assert "rows" in capsys.readouterr().out
    assert PerformanceMetric.objects.filter(name="portfolio.equity").exists()
