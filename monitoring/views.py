"""Health probes: liveness and readiness."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring.engine.health import summarise
from monitoring.metrics_access import metrics_refusal
from monitoring.selectors import component_results, readiness_components, readiness_status


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
def ready(request: HttpRequest) -> HttpResponse:
    """Readiness per component (status and age); 503 when a required dependency is down.

    Everyone gets the verdict and the dependencies (database, Redis, channel layer); engines,
    feeds and the task cluster (they name accounts and symbols) are shown to the networks and
    token that may read ``/metrics`` and to staff. JSON, or a page with ``?format=html`` or
    ``Accept: text/html``.
    """
    components = readiness_components()
    status = readiness_status(components)
    if not _may_see_details(request):
        components = [c for c in components if c.required]
    document = {
        "status": status,
        "version": settings.RRR_VERSION,
        "time": timezone.now().isoformat(),
        "components": [c.as_dict() for c in components],
        # The flat view kept for existing probes: name -> ok/detail.
        "checks": {
            c.name: {"ok": c.status == "ok", "detail": c.detail}
            for c in components
            if c.required
        },
    }
    code = 503 if status == "unavailable" else 200
    if _wants_html(request):
        return render(request, "monitoring/health.html", {"doc": document}, status=code)
    return JsonResponse(document, status=code)


def _may_see_details(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return metrics_refusal(request) is None or bool(user and user.is_staff)


def _wants_html(request: HttpRequest) -> bool:
    wanted = request.GET.get("format")
    if wanted:
        return wanted == "html"
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept
