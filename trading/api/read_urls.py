"""Routes of trading's read endpoints (portfolio, trades, performance, profit)."""

from django.urls import path

from trading.api import portfolio_views as views

urlpatterns = [
    path("portfolio", views.PortfolioView.as_view(), name="api-portfolio"),
    path("portfolio/positions", views.PositionsView.as_view(), name="api-positions"),
    path("trades", views.TradesView.as_view(), name="api-trades"),
    path("trades/round-trips", views.RoundTripsView.as_view(), name="api-round-trips"),
    path("performance", views.PerformanceView.as_view(), name="api-performance"),
    path("performance/equity-curve", views.EquityCurveView.as_view(), name="api-equity-curve"),
    path("profit/symbols", views.ProfitSymbolView.as_view(), name="api-profit-symbols"),
    path("profit/daily", views.ProfitPeriodView.as_view(period="day"), name="api-profit-daily"),
    path("profit/weekly", views.ProfitPeriodView.as_view(period="week"), name="api-profit-weekly"),
    path(
        "profit/monthly",
        views.ProfitPeriodView.as_view(period="month"),
        name="api-profit-monthly",
    ),
]
