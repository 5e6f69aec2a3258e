"""Routes of the dashboard's pages (every one needs a login)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from rrr_site.login_throttle import login_throttled
from rrr_site.pages import lab_views, views

urlpatterns = [
    # Any active user signs in here (the admin's login page admits staff only).
    path(
        "login/",
        login_throttled(auth_views.LoginView.as_view(template_name="pages/login.html")),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.overview, name="dashboard"),
    path("market/", views.market, name="pages-market"),
    path("orders/", views.orders, name="pages-orders"),
    path("orders/<int:pk>/", views.order_detail, name="pages-order"),
    path("orders/by-client/<str:client_id>/", views.order_by_client_id, name="pages-order-client"),
    path("orders/export/<str:kind>.csv", views.history_csv, name="pages-history-csv"),
    path("performance/", views.performance, name="pages-performance"),
    path("risk/", views.risk, name="pages-risk"),
    path("system/", views.system, name="pages-system"),
    path("models/", lab_views.models_page, name="pages-models"),
    path("models/<int:pk>/activate", lab_views.model_activate_view, name="pages-model-activate"),
    path("backtests/", lab_views.backtests_page, name="pages-backtests"),
    path("backtests/<int:pk>/", lab_views.backtest_page, name="pages-backtest"),
    path("backtests/<int:pk>/report", lab_views.backtest_report, name="pages-backtest-report"),
    path(
        "backtests/<int:pk>/plotly-<str:version>.min.js",
        lab_views.backtest_report_script,
        name="pages-backtest-report-script",
    ),
]
