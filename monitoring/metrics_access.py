"""``/metrics`` behind a gate: a bearer token (``METRICS_TOKEN``) or an allowed network.

Prometheus sends ``Authorization: Bearer <METRICS_TOKEN>`` (``authorization`` /
``bearer_token`` in its scrape config), or scrapes from ``METRICS_ALLOWED_NETWORKS``
(default loopback only). A request that came through a proxy (it carries a forwarding header)
never gets in by network: the proxy's own address says nothing about the real client.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from typing import TypeAlias

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(address: str, networks: Iterable[Network]) -> bool:
    """Say whether ``address`` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    candidates = [ip]
    if ip.version == 6 and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c in net for c in candidates for net in networks if c.version == net.version)


def _bearer(request: HttpRequest) -> str | None:
    """Return the bearer token of the request, or None when it sent none."""
    kind, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if kind.lower() == "bearer" else None


def _token_valid(presented: str) -> bool:
    expected = settings.METRICS_TOKEN
    # Constant time, so response timing does not reveal how much of a guess was right.
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """Return the 401/403 response for a request that may not read metrics, else None."""
    presented = _bearer(request)
    if presented is not None:
        if _token_valid(presented):
            return None
        return _unauthorised("invalid metrics token")
    proxied = any(name in request.META for name in FORWARDING_HEADERS)
    remote = request.META.get("REMOTE_ADDR", "")
    if not proxied and address_allowed(remote, settings.METRICS_ALLOWED_NETWORKS):
        return None
    if settings.METRICS_TOKEN:
        return _unauthorised("metrics need a bearer token or an allowed network")
    message = "metrics are served to METRICS_ALLOWED_NETWORKS only\n"
    return HttpResponse(message, status=403, content_type="text/plain")


def _unauthorised(message: str) -> HttpResponse:
    response = HttpResponse(f"{message}\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve Prometheus metrics to a valid bearer token or an allowed network."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    from monitoring.metrics_batch import metrics_publish
    from monitoring.performance import jobs_queue_depth_refresh

    jobs_queue_depth_refresh()  # read at scrape time: one count on the broker
    metrics_publish()  # this process's batched counts (PROMETHEUS_MULTIPROC_DIR: to its files)
    from monitoring.worker_metrics import merged_registry

    merged = merged_registry()  # runtrader --serve: its qcluster child's series too
    if merged is None:
        return ExportToDjangoView(request)
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HttpResponse(generate_latest(merged), content_type=CONTENT_TYPE_LATEST)
