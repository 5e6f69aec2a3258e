"""django-q2 task for optimisation runs: load the run by id, execute it, return the outcome."""

from __future__ import annotations

import logging
from typing import Any

from models_ml.models import OptimizationRun

logger = logging.getLogger(__name__)

OPTIMIZE_TASK = "models_ml.optimization_tasks.optimize_task"


def optimize_task(run_id: int) -> dict[str, Any]:
    """Execute pending optimisation run ``run_id``; return a summary (raise on failure)."""
    from models_ml.optimization import optimization_run_execute  # torch, qiskit: only to run

    run = OptimizationRun.objects.get(pk=run_id)
    optimization_run_execute(run=run)
    logger.info("optimisation run %s completed", run_id)
    return {
        "run": run.pk,
        "status": run.status,
        "chosen": run.result["answer"]["chosen"],
        "approximation_ratio": run.approximation_ratio,
    }
