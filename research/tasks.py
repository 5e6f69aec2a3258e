"""django-q2 task functions for research (load by id, call a service, record the outcome)."""

from __future__ import annotations

from datetime import datetime

from research.models import Finding, ResearchRun
from research.services import finding_backtest, research_run_execute


def research_task(run_id: int) -> dict:
    """Execute a queued research run by id; return its status and summary."""
    run = research_run_execute(run=ResearchRun.objects.get(pk=run_id))
    return {"run": run.pk, "status": run.status, "findings": run.findings.count()}


def finding_backtest_task(
    finding_id: int, start: str | None = None, end: str | None = None
) -> dict:
    """Backtest a finding's strategy (over its study's period unless ISO ``start``/``end``)."""
    finding = Finding.objects.select_related("run").get(pk=finding_id)
    start_at = datetime.fromisoformat(start) if start else finding.run.start
    end_at = datetime.fromisoformat(end) if end else finding.run.end
    run = finding_backtest(finding=finding, start=start_at, end=end_at)
    return {"finding": finding.pk, "backtest": run.pk, "status": run.status}
