"""Writes for the model registry: activation and deactivation, audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from models_ml.models import MLModel
from monitoring.services import audit_record, broadcast


@transaction.atomic
def model_activate(*, model: MLModel, actor: Any) -> MLModel:
    """Make ``model`` the one active version of its name; deactivate its siblings (audited)."""
    siblings = list(
        MLModel.objects.select_for_update()
        .filter(name=model.name, active=True)
        .exclude(pk=model.pk)
    )
    for sibling in siblings:
        sibling.active = False
        sibling.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action="ml_model.deactivate",
            obj=sibling,
            before={"active": True},
            after={"active": False},
        )
    if not model.active:
        model.active = True
        model.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action="ml_model.activate",
            obj=model,
            before={"active": False},
            after={"active": True},
        )
        broadcast("system", "model_activated", {"name": model.name, "version": model.version})
    return model


@transaction.atomic
def model_deactivate(*, model: MLModel, actor: Any) -> MLModel:
    """Switch ``model`` off (audited)."""
    if model.active:
        model.active = False
        model.save(update_fields=["active"])
        audit_record(
            actor=actor,
            action="ml_model.deactivate",
            obj=model,
            before={"active": True},
            after={"active": False},
        )
    return model
