"""Routes of risk's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from risk.api import views

urlpatterns = [
    path("risk/limits", views.RiskLimitListView.as_view(), name="api-risk-limits"),
    path("risk/limits/<int:pk>", views.RiskLimitDetailView.as_view(), name="api-risk-limit"),
    path("risk/events", views.RiskEventListView.as_view(), name="api-risk-events"),
    path("risk/report", views.RiskReportView.as_view(), name="api-risk-report"),
    path("accounts/<int:pk>/halt", views.HaltView.as_view(), name="api-account-halt"),
    path("accounts/<int:pk>/pause", views.PauseView.as_view(), name="api-account-pause"),
    path("accounts/<int:pk>/resume", views.ResumeView.as_view(), name="api-account-resume"),
]
