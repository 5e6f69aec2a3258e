"""Routes of research's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from research.api import views

urlpatterns = [
    path("research/runs", views.RunListView.as_view(), name="api-research-runs"),
    path("research/runs/<int:pk>", views.RunDetailView.as_view(), name="api-research-run"),
    path("research/findings", views.FindingListView.as_view(), name="api-research-findings"),
    path(
        "research/findings/<int:pk>",
        views.FindingDetailView.as_view(),
        name="api-research-finding",
    ),
    path(
        "research/findings/<int:pk>/backtest",
        views.FindingBacktestView.as_view(),
        name="api-research-finding-backtest",
    ),
]
