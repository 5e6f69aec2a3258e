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

# Public answers name no account, symbol or host: each kind of component (the part of its name
# before ":") with its worst status. Worse statuses rank higher.
_RANK = {"ok": 0, "stopped": 1, "unknown": 2, "stale": 3, "degraded": 3, "down": 4}


@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers; components running in it (engines) say how they are.

    Everyone gets the verdict; the version and the components (they name accounts) go to those
    who may see details (``_may_see_details``)."""
    components = summarise(component_results())
    document = {
        "status": "ok" if components["status"] == "ok" else "degraded",
        "time": timezone.now().isoformat(),
    }
    if _may_see_details(request):
        document |= {"version": settings.RRR_VERSION, "components": components["checks"]}
    return JsonResponse(document)


@require_GET
@never_cache
def ready(request: HttpRequest) -> HttpResponse:
    """Readiness per component (status and age); 503 when a required dependency is down.

    Everyone gets the verdict and each kind of component's status (``database``, ``redis``,
    ``channel_layer``, ``engine``, ``runtrader``, ``feed``, ``qcluster``...: the worst of its
    kind). The components by name (they name accounts and symbols), their details and ages and
    the version go to those who may see details: the networks and the token that may read
    ``/metrics`` (Prometheus, load balancers) and signed-in staff. JSON, or a page with
    ``?format=html`` or ``Accept: text/html``.
    """
    components = readiness_components()
    status = readiness_status(components)
    document = {"status": status, "time": timezone.now().isoformat()}
    if _may_see_details(request):
        document |= {
            "version": settings.RRR_VERSION,
            "components": [c.as_dict() for c in components],
            # The flat view kept for existing probes: name -> ok/detail.
            "checks": {
                c.name: {"ok": c.status == "ok", "detail": c.detail}
                for c in components
                if c.required
            },
        }
    else:
        kinds = _kinds(components)
        required = {c.name.split(":", 1)[0] for c in components if c.required}
        document |= {
            "components": [{"name": kind, "status": worst} for kind, worst in kinds.items()],
            "checks": {kind: {"ok": kinds[kind] == "ok"} for kind in kinds if kind in required},
        }
    code = 503 if status == "unavailable" else 200
    if _wants_html(request):
        return render(request, "monitoring/health.html", {"doc": document}, status=code)
    return JsonResponse(document, status=code)


def _kinds(components) -> dict[str, str]:
    """Return each kind of component with the worst status of its kind, in first-seen order."""
    worst: dict[str, str] = {}
    for c in components:
        kind = c.name.split(":", 1)[0]
        if _RANK.get(c.status, 4) >= _RANK.get(worst.get(kind, "ok"), 4):
            worst[kind] = c.status
    return worst


def _may_see_details(request: HttpRequest) -> bool:
    """Staff signed in, or a request ``/metrics`` would answer (its token, allowed networks)."""
    user = getattr(request, "user", None)
    staff = bool(user and user.is_authenticated and user.is_active and user.is_staff)
    return staff or metrics_refusal(request) is None


def _wants_html(request: HttpRequest) -> bool:
    wanted = request.GET.get("format")
    if wanted:
        return wanted == "html"
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept
