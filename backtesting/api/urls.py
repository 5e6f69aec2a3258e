"""Routes of backtesting's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from backtesting.api import read_views

urlpatterns = [
    path("backtests", read_views.BacktestListView.as_view(), name="api-backtests"),
    path("backtests/<int:pk>", read_views.BacktestDetailView.as_view(), name="api-backtest"),
]
