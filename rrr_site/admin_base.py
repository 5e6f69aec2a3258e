"""Admin base classes shared by the apps: read-only views and audited edits."""

from __future__ import annotations

from django.contrib import admin
from django.db import models

from monitoring.services import audit_record, model_state


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Viewable, never editable from the admin (market data, audit log)."""

    def has_add_permission(self, request, obj=None) -> bool:
        """Forbid adding."""
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        """Forbid changing."""
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """Forbid deleting."""
        return False


class AuditedModelAdmin(admin.ModelAdmin):
    """Writes an ``AuditLog`` row with before/after values for every add, change and delete."""

    audit_action = "change"

    def save_model(self, request, obj: models.Model, form, change: bool) -> None:
        """Save and audit the change."""
        before = None
        if change and obj.pk:
            before = model_state(type(obj).objects.get(pk=obj.pk))
        super().save_model(request, obj, form, change)
        action = f"{self.audit_action}.{'update' if change else 'create'}"
        audit_record(
            actor=request.user, action=action, obj=obj, before=before, after=model_state(obj)
        )

    def delete_model(self, request, obj: models.Model) -> None:
        """Audit, then delete."""
        audit_record(
            actor=request.user,
            action=f"{self.audit_action}.delete",
            obj=obj,
            before=model_state(obj),
            after=None,
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        """Audit each object of a bulk delete."""
        for obj in queryset:
            audit_record(
                actor=request.user,
                action=f"{self.audit_action}.delete",
                obj=obj,
                before=model_state(obj),
                after=None,
            )
        super().delete_queryset(request, queryset)
