"""Routes of backtesting's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from backtesting.api import control_views, read_views

urlpatterns = [
    path("backtests", control_views.BacktestsView.as_view(), name="api-backtests"),
    path("backtests/<int:pk>", read_views.BacktestDetailView.as_view(), name="api-backtest"),
    path(
        "backtests/<int:pk>/status",
        control_views.BacktestStatusView.as_view(),
        name="api-backtest-status",
    ),
    path(
        "backtests/<int:pk>/cancel",
        control_views.BacktestCancelView.as_view(),
        name="api-backtest-cancel",
    ),
    path(
        "backtests/<int:pk>/report",
        control_views.BacktestReportView.as_view(),
        name="api-backtest-report",
    ),
    path(
        "backtests/<int:pk>/plotly-<str:version>.min.js",
        control_views.BacktestReportScriptView.as_view(),
        name="api-backtest-report-script",
    ),
]
