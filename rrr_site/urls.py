"""URL configuration: health, metrics, admin, API schema, dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring import views as monitoring_views
from rrr_site import views as site_views

urlpatterns = [
    path("health", monitoring_views.health, name="health"),
    path("health/ready", monitoring_views.ready, name="health-ready"),
    path("", include("django_prometheus.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", site_views.dashboard, name="dashboard"),
]
