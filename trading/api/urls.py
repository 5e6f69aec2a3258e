"""Routes of trading's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from trading.api import control_views, order_views
from trading.api.read_urls import urlpatterns as read_urlpatterns

urlpatterns = [
    path("orders", order_views.OrderListCreateView.as_view(), name="api-orders"),
    path("orders/<int:pk>", order_views.OrderDetailView.as_view(), name="api-order"),
    path("orders/<int:pk>/cancel", order_views.OrderCancelView.as_view(), name="api-order-cancel"),
    path(
        "accounts/<int:pk>/positions/<str:symbol>/close",
        order_views.PositionCloseView.as_view(),
        name="api-position-close",
    ),
    path(
        "accounts/<int:pk>/flatten",
        order_views.AccountFlattenView.as_view(),
        name="api-account-flatten",
    ),
    path("control/engines", control_views.EngineStatusView.as_view(), name="api-engines"),
]
urlpatterns += read_urlpatterns  # portfolio, trades, performance, profit
