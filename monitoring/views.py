"""Health probes: liveness and readiness."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring.engine.health import summarise
from monitoring.selectors import component_results, readiness_checks


@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers; components running in it (engines) say how they are."""
    components = summarise(component_results())
    return JsonResponse(
        {
            "status": "ok" if components["status"] == "ok" else "degraded",
            "version": settings.RRR_VERSION,
            "time": timezone.now().isoformat(),
            "components": components["checks"],
        }
    )


@require_GET
@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and, when configured, Redis are reachable; 503 otherwise."""
    document = summarise(readiness_checks())
    document["version"] = settings.RRR_VERSION
    return JsonResponse(document, status=200 if document["status"] == "ok" else 503)
