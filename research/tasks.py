"""django-q2 task functions for research (load by id, call a service, record the outcome)."""

from __future__ import annotations

from research.models import Finding, ResearchRun
from research.services import finding_backtest, research_run_execute


def research_task(run_id: int) -> dict:
    """Execute a queued research run by id; return its status and summary."""
    run = research_run_execute(run=ResearchRun.objects.get(pk=run_id))
    return {"run": run.pk, "status": run.status, "findings": run.findings.count()}


def finding_backtest_task(finding_id: int) -> dict:
    """Backtest a finding's strategy over its study's period; return the backtest's id."""
    finding = Finding.objects.select_related("run").get(pk=finding_id)
    run = finding_backtest(finding=finding, start=finding.run.start, end=finding.run.end)
    return {"finding": finding.pk, "backtest": run.pk, "status": run.status}
