"""Routes of models_ml's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from models_ml.api import read_views

urlpatterns = [
    path("ai/decisions", read_views.DecisionsView.as_view(), name="api-ai-decisions"),
    path("ai/models", read_views.ModelsView.as_view(), name="api-ai-models"),
]
