"""Reads for models_ml: the active model for a symbol and where its artifact lives."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from models_ml.models import MLModel, TrainingRun


def active_model_for(*, name: str | None = None, symbol: str, timeframe: str) -> MLModel | None:
    """Return the active version of ``name``, or the active model trained for symbol/timeframe.

    With ``name`` the one active version of that name is returned whatever its symbols (the
    caller chose it). Without, the newest-trained active model whose symbols include ``symbol``
    and whose timeframe matches. None when nothing is active.
    """
    active = MLModel.objects.filter(active=True)
    if name:
        return active.filter(name=name).first()
    # JSON "contains" is not portable (SQLite lacks it); active rows are few, so filter here.
    candidates = active.filter(timeframe=timeframe).order_by("-trained_at", "-pk")
    for model in candidates:
        if symbol in (model.symbols or []):
            return model
    return None


def model_artifact_dir(model: MLModel) -> Path:
    """Return the directory of a model's artifact (relative paths are under MODELS_DIR)."""
    if not model.artifact_path:
        raise FileNotFoundError(f"{model} has no artifact path")
    path = Path(model.artifact_path)
    return path if path.is_absolute() else Path(settings.MODELS_DIR) / path


def model_versions(*, name: str) -> list[MLModel]:
    """Return every version of ``name``, newest first."""
    return list(MLModel.objects.filter(name=name).order_by("-version"))


def training_run_get(*, run_id: int) -> TrainingRun:
    """Return a training run with its model."""
    return TrainingRun.objects.select_related("model").get(pk=run_id)


def model_training_range(model: MLModel) -> tuple | None:
    """Return the (start, end) of the bars ``model`` was trained on, or None if unrecorded."""
    run = (
        TrainingRun.objects.filter(model=model, start__isnull=False, end__isnull=False)
        .order_by("-finished_at", "-pk")
        .first()
    )
    return (run.start, run.end) if run is not None else None


def model_names() -> list[str]:
    """Return the names of every registered model, sorted."""
    return sorted(set(MLModel.objects.values_list("name", flat=True)))
