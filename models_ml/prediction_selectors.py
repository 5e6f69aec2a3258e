"""Reads of model decisions (predictions) and the model registry for the API."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from marketdata.models import Symbol
from models_ml.models import MLModel, Prediction


def predictions(
    *,
    model: int | None = None,
    model_name: str | None = None,
    symbol: str | None = None,
    kind: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Prediction]:
    """Return predictions narrowed by model (id or name), symbol, kind and ``start <= ts < end``."""
    rows = Prediction.objects.select_related("model", "symbol").defer("features")
    if model is not None:
        rows = rows.filter(model_id=model)
    if model_name:
        rows = rows.filter(model__name=model_name)
    if symbol:
        # By id, so the (symbol, -ts) index serves the newest-first order (a join would not).
        symbol_id = Symbol.objects.filter(name=symbol).values_list("pk", flat=True).first()
        rows = rows.filter(symbol_id=symbol_id) if symbol_id else rows.none()
    if kind:
        rows = rows.filter(kind=kind)
    if start is not None:
        rows = rows.filter(ts__gte=start)
    if end is not None:
        rows = rows.filter(ts__lt=end)
    return rows


def model_registry(*, name: str | None = None, active: bool | None = None) -> QuerySet[MLModel]:
    """Return model versions (newest first), optionally one name or only (in)active ones."""
    rows = MLModel.objects.all()
    if name:
        rows = rows.filter(name=name)
    if active is not None:
        rows = rows.filter(active=active)
    return rows
