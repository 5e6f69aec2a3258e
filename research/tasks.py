"""django-q2 task functions for research (load by id, call a service, record the outcome)."""

from __future__ import annotations

from research.models import ResearchRun
from research.services import research_run_execute


def research_task(run_id: int) -> dict:
    """Execute a queued research run by id; return its status and summary."""
    run = research_run_execute(run=ResearchRun.objects.get(pk=run_id))
    return {"run": run.pk, "status": run.status, "findings": run.findings.count()}
