"""URL configuration: health, metrics, admin, API schema, dashboard."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from marketdata.webhooks import tradingview_alert
from monitoring import views as monitoring_views
from monitoring.metrics_access import metrics
from rrr_site.login_throttle import login_throttled


def no_favicon(request: HttpRequest) -> HttpResponse:
    """Answer browsers' automatic /favicon.ico with no content (the admin and the API docs,
    which carry no icon link, logged a 404 console error on every first page)."""
    return HttpResponse(status=204)


urlpatterns = [
    path("favicon.ico", no_favicon, name="favicon"),
    path("health", monitoring_views.health, name="health"),
    path("health/ready", monitoring_views.ready, name="health-ready"),
    path("metrics", metrics, name="prometheus-django-metrics"),
    # The admin's login form counts guesses with the token endpoint (rrr_site.login_throttle).
    path("admin/login/", login_throttled(admin.site.login), name="admin-login-throttled"),
    path("admin/", admin.site.urls),
    # Outside /api: TradingView sends no auth headers; the token in the path is the secret.
    path("hooks/tradingview/<str:token>", tradingview_alert, name="tradingview-alert"),
    # The schema answers 401/403 to anonymous clients (SERVE_PERMISSIONS); the docs page sends
    # an anonymous browser to the login page first.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        login_required(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
    # /api/v1/... and the unversioned /api/... aliases of every app's <app>/api/urls.py.
    path("", include("rrr_site.api.urls")),
    path("", include("rrr_site.pages.urls")),  # the dashboard's pages
]
