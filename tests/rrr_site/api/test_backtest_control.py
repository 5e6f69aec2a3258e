"""Backtest control over the API: queue (as ``backtest`` checks it), poll, cancel, the report.

django-q runs synchronously in tests: a queued run has already run when POST answers.
"""

from __future__ import annotations

import datetime as dt

import pytest

from backtesting.models import BacktestRun
from monitoring.models import AuditLog

pytestmark = pytest.mark.django_db

RUN = {
    "strategy": "sma_cross",
    "symbols": ["BTC-USD"],
    "timeframe": "1h",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-02-01T00:00:00Z",
    "params": {"fast": 5, "slow": 20},
    "source": "sim",
    "no_risk": True,
}


@pytest.fixture(autouse=True)
def reports_dir(settings, tmp_path):
    settings.REPORTS_DIR = tmp_path / "reports"


def test_a_trader_queues_a_run_with_monte_carlo_polls_it_and_reads_its_report(as_role, world):
    trader = as_role("trader")
    queued = trader.post("/api/v1/backtests", {**RUN, "montecarlo": 20}, format="json")
    assert queued.status_code == 202, queued.json()
    body = queued.json()
    run = BacktestRun.objects.get(pk=body["id"])
    assert run.owner == world.users["trader"] and body["task"]
    assert run.params == {"fast": 5, "slow": 20} and run.data_source == "sim"
    state = as_role("viewer").get(body["status_url"]).json()
    assert state["status"] == "completed" and state["progress"] == 1.0
    detail = trader.get(f"/api/v1/backtests/{run.pk}").json()
    assert set(detail["metrics"]["montecarlo"]) and detail["report_url"].endswith("/report")
    report = trader.get(f"/api/v1/backtests/{run.pk}/report")
    assert report.status_code == 200 and report["Content-Type"].startswith("text/html")
    assert b"<html" in b"".join(report.streaming_content).lower()
    # The report is its owner's (and admins'): another user gets 404, as for a missing run.
    assert as_role("viewer").get(f"/api/v1/backtests/{run.pk}/report").status_code == 404
    assert as_role("admin").get(f"/api/v1/backtests/{run.pk}/report").status_code == 200
    assert trader.get("/api/v1/backtests/999999/report").status_code == 404


def test_a_grid_sweep_runs_its_trials_and_picks_the_best(as_role):
    sweep = {**RUN, "optimize": "grid", "space": ["fast=5:10:5", "slow=20:30:10"]}
    queued = as_role("trader").post("/api/v1/backtests", sweep, format="json")
    assert queued.status_code == 202, queued.json()
    parent = BacktestRun.objects.get(pk=queued.json()["id"])
    assert parent.status == "completed" and parent.optimize == "grid"
    state = as_role("viewer").get(f"/api/v1/backtests/{parent.pk}/status").json()
    assert state["trials"] == 4 and state["trials_done"] == 4
    assert parent.params == parent.metrics["search"]["best_params"]


def test_a_walk_forward_run_is_queued_with_its_windows(as_role):
    walk = {**RUN, "optimize": "walkforward", "space": ["fast=5:10:5"], "train_bars": 300,
            "test_bars": 100, "params": {"slow": 20}}  # fmt: skip
    queued = as_role("trader").post("/api/v1/backtests", walk, format="json")
    assert queued.status_code == 202, queued.json()
    run = BacktestRun.objects.get(pk=queued.json()["id"])
    assert run.status == "completed", run.error
    assert run.metrics["walk_forward"]["train_bars"] == 300


@pytest.mark.parametrize(
    "change,field",
    [
        ({"strategy": "astrology"}, "strategy"),
        ({"symbols": []}, "symbols"),
        ({"symbols": ["NOPE-USD"]}, "symbols"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2023-01-01T00:00:00Z"}, "non_field_errors"),
        ({"timeframe": "7x"}, "timeframe"),
        ({"params": {"fast": "quick"}}, "non_field_errors"),
        ({"params": {"fast": [1]}}, "params"),
        ({"fees_bps": "-1"}, "fees_bps"),
        ({"capital": "0"}, "capital"),
        ({"montecarlo": 10**9}, "montecarlo"),
        ({"optimize": "walkforward"}, "train_bars"),  # needs train_bars and test_bars
        ({"optimize": "grid", "space": ["nope=1:2"]}, "space"),
        ({"optimize": "anneal"}, "optimize"),
        ({"risk_account": "other", "no_risk": False}, "risk_account"),  # not one of theirs
        ({"stop_loss": "2"}, "stop_loss"),
    ],
)
def test_bad_input_is_a_400_with_field_errors_and_writes_nothing(as_role, change, field):
    answer = as_role("trader").post("/api/v1/backtests", {**RUN, **change}, format="json")
    assert answer.status_code == 400 and field in answer.json(), answer.json()
    assert not BacktestRun.objects.exists()


def test_roles(as_role):
    assert as_role("anonymous").post("/api/v1/backtests", RUN, format="json").status_code == 401
    assert as_role("viewer").post("/api/v1/backtests", RUN, format="json").status_code == 403


def _pending(owner=None) -> BacktestRun:
    from backtesting.run_control import backtest_request
    from backtesting.services import backtest_run_create

    request, _ = backtest_request(
        {"strategy": "sma_cross", "symbols": "BTC-USD", "source": "sim", "no_risk": True},
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 8, 1, tzinfo=dt.UTC),
    )
    return backtest_run_create(**request, owner=owner)


def test_cancel_a_queued_run_it_never_starts_and_the_cancel_is_audited(as_role, world):
    from backtesting.tasks import backtest_task

    run = _pending(owner=world.users["trader"])
    # Only its owner (or an admin) may cancel it; others get 404 and change nothing.
    assert as_role("other_trader").post(f"/api/v1/backtests/{run.pk}/cancel").status_code == 404
    assert as_role("viewer").post(f"/api/v1/backtests/{run.pk}/cancel").status_code == 403
    answer = as_role("trader").post(f"/api/v1/backtests/{run.pk}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    entry = AuditLog.objects.get(action="backtest.cancel")
    assert entry.actor == world.users["trader"] and entry.before == {"status": "pending"}
    # The worker that picks it up later leaves it cancelled and runs nothing.
    assert backtest_task(run.pk)["status"] == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled" and not run.trades.exists() and run.started_at is None
    again = as_role("trader").post(f"/api/v1/backtests/{run.pk}/cancel")
    assert again.status_code == 409


def test_a_running_run_stops_at_its_next_progress_mark(world):
    from backtesting.run_control import backtest_cancel
    from backtesting.services import BacktestCancelled, backtest_execute

    run = _pending()
    marks = []

    def on_progress(fraction: float) -> None:
        marks.append(fraction)
        if len(marks) == 1:
            backtest_cancel(run=run, actor=world.users["admin"])

    with pytest.raises(BacktestCancelled):
        backtest_execute(run=run, progress=on_progress)
    run.refresh_from_db()
    assert len(marks) == 1 and run.status == "cancelled" and run.progress < 1
    assert run.error.startswith("cancelled by") and not run.trades.exists()
    assert run.metrics == {} and not run.report_path
