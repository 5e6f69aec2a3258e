"""Routes of monitoring's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from monitoring.api import alert_views, views

urlpatterns = [
    path("ws/ticket", views.StreamTicketView.as_view(), name="api-ws-ticket"),
    path("alerts", alert_views.AlertListView.as_view(), name="api-alerts"),
    path(
        "alerts/<int:pk>/acknowledge",
        alert_views.AlertAcknowledgeView.as_view(),
        name="api-alert-acknowledge",
    ),
    path(
        "alerts/<int:pk>/resolve", alert_views.AlertResolveView.as_view(), name="api-alert-resolve"
    ),
    path("devices", alert_views.DeviceListView.as_view(), name="api-devices"),
    path("devices/<str:device_id>", alert_views.DeviceDetailView.as_view(), name="api-device"),
]
