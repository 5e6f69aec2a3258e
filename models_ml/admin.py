"""Admin for the model registry: activation is an audited action; predictions are read-only."""

from django.contrib import admin, messages

from models_ml.models import MLModel, OptimizationRun, Prediction, TrainingRun
from models_ml.services import (
    OWNER_DIED,
    ModelWithoutEdge,
    model_activate,
    model_deactivate,
    training_runs_reap,
)
from rrr_site.admin_base import ReadOnlyModelAdmin


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "version",
        "model_type",
        "timeframe",
        "active",
        "trained_at",
        "created_at",
    ]
    list_filter = ["active", "model_type", "timeframe"]
    search_fields = ["name", "checksum"]
    date_hierarchy = "created_at"
    readonly_fields = ["active", "checksum", "artifact_path", "metrics", "trained_at"]
    actions = ["activate", "force_activate", "deactivate"]

    @admin.action(description="Activate (deactivates other versions of the same name)")
    def activate(self, request, queryset):
        """Activate one version per selected name (a version without an edge is refused)."""
        self._activate(request, queryset, force=False)

    @admin.action(description="Activate even without an edge (forced, audited)")
    def force_activate(self, request, queryset):
        """Activate one version per selected name whatever its verdict."""
        self._activate(request, queryset, force=True)

    def _activate(self, request, queryset, *, force: bool) -> None:
        chosen = {}
        for model in queryset.order_by("name", "-version"):
            chosen.setdefault(model.name, model)
        if len(chosen) < queryset.count():
            self.message_user(
                request,
                "Only the newest selected version of each name was activated.",
                messages.WARNING,
            )
        for model in chosen.values():
            try:
                model_activate(model=model, actor=request.user, force=force)
            except ModelWithoutEdge as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Deactivate")
    def deactivate(self, request, queryset):
        """Deactivate the selected versions."""
        for model in queryset.filter(active=True):
            model_deactivate(model=model, actor=request.user)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id",
        "model_type",
        "status",
        "progress",
        "timeframe",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "model_type"]
    search_fields = ["error"]
    date_hierarchy = "created_at"

    def changelist_view(self, request, extra_context=None):
        """List runs after failing those whose owner process died (so none shows running)."""
        reaped = training_runs_reap()
        if reaped:
            ids = ", ".join(str(pk) for pk in reaped)
            self.message_user(
                request, f"Training runs {ids} marked failed: {OWNER_DIED}.", messages.WARNING
            )
        return super().changelist_view(request, extra_context)


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "model", "symbol", "kind", "horizon", "value", "confidence"]
    list_filter = ["kind", "model", "symbol"]
    search_fields = ["symbol__name", "model__name"]
    date_hierarchy = "ts"
    show_full_result_count = False


@admin.register(OptimizationRun)
class OptimizationRunAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id",
        "kind",
        "method",
        "problem",
        "status",
        "objective",
        "classical_objective",
        "approximation_ratio",
        "created_at",
    ]
    list_filter = ["kind", "status", "problem"]
    search_fields = ["error"]
    date_hierarchy = "created_at"

    @admin.display(description="method")
    def method(self, obj: OptimizationRun) -> str:
        """Return the solver the run used (exact, greedy and meanvar share the classical kind)."""
        return str(obj.inputs.get("method", ""))
