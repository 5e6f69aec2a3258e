"""django-q2 tasks of models_ml: load the run by id, call the service, return the outcome."""

from __future__ import annotations

import logging
from typing import Any

from models_ml.selectors import training_run_get
from models_ml.services import (
    ModelWithoutEdge,
    model_activate,
    train_model,
    training_runs_reap,
)

logger = logging.getLogger(__name__)

TRAIN_TASK = "models_ml.tasks.train_task"


def train_task(
    run_id: int,
    name: str | None = None,
    activate_as: str | None = None,
    force_activate: bool = False,
) -> dict[str, Any]:
    """Train pending run ``run_id``; return a summary, raise (run marked failed) on failure.

    ``activate_as``: when set, activate the new version with that actor name (audited); a
    version without an edge stays inactive (logged) unless ``force_activate``.
    """
    # Workers are where runs die (a killed cluster): clear orphaned runs before starting one.
    training_runs_reap()
    run = training_run_get(run_id=run_id)
    model = train_model(run=run, name=name)
    if activate_as:
        try:
            model_activate(model=model, actor=activate_as, force=force_activate)
        except ModelWithoutEdge as exc:
            logger.warning("training run %s: %s", run_id, exc)
    logger.info("training run %s registered %s", run_id, model)
    return {
        "run": run.pk,
        "model": model.pk,
        "name": model.name,
        "version": model.version,
        "active": model.active,
        "verdict": model.metrics.get("verdict"),
    }
