"""Mount the API: the auth endpoints and every app's ``<app>/api/urls.py`` under ``/api/v1/``.

The same routes answer under ``/api/`` (the seed's unversioned paths, kept as aliases) in the
``unversioned`` namespace; ``reverse("name")`` gives the ``/api/v1/`` one.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.urls import URLPattern, URLResolver, include, path, re_path

from rrr_site.api import auth, stats
from rrr_site.api.not_found import ApiNotFoundView

_AUTH = [
    path("auth/token", auth.TokenObtainView.as_view(), name="api-token-obtain"),
    path("auth/token/refresh", auth.TokenRefreshView.as_view(), name="api-token-refresh"),
    path("auth/token/revoke", auth.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("auth/me", auth.MeView.as_view(), name="api-me"),
    path("stats", stats.StatsView.as_view(), name="api-stats"),
]


def app_api_patterns() -> list[URLPattern | URLResolver]:
    """Return the auth routes plus every installed app's ``<app>.api.urls.urlpatterns``."""
    patterns: list[URLPattern | URLResolver] = list(_AUTH)
    for config in apps.get_app_configs():
        if Path(config.path).parent != Path(settings.BASE_DIR):
            continue  # only the project's own apps
        module = f"{config.name}.api.urls"
        if importlib.util.find_spec(f"{config.name}.api") is None:
            continue
        if importlib.util.find_spec(module) is None:
            continue
        patterns.extend(importlib.import_module(module).urlpatterns)
    return patterns


_PATTERNS = app_api_patterns()

urlpatterns = [
    path("api/v1/", include(_PATTERNS)),
    path("api/", include((_PATTERNS, "unversioned"), namespace="unversioned")),
    # Last: an /api/ path no route matches answers a JSON 404, not Django's HTML page.
    re_path(r"^api/", ApiNotFoundView.as_view(), name="api-not-found"),
]
