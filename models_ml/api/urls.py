"""Routes of models_ml's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from models_ml.api import control_views, read_views

urlpatterns = [
    path("ai/decisions", read_views.DecisionsView.as_view(), name="api-ai-decisions"),
    path("ai/models", read_views.ModelsView.as_view(), name="api-ai-models"),
    path(
        "ai/models/<int:pk>/activate",
        control_views.ModelActivateView.as_view(),
        name="api-ai-model-activate",
    ),
    path(
        "ai/models/<int:pk>/deactivate",
        control_views.ModelDeactivateView.as_view(),
        name="api-ai-model-deactivate",
    ),
    path("ai/training", control_views.TrainingCreateView.as_view(), name="api-ai-training"),
    path(
        "ai/training/<int:pk>",
        control_views.TrainingRunView.as_view(),
        name="api-ai-training-run",
    ),
]
