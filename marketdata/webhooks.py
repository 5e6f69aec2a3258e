"""``POST /hooks/tradingview/<token>``: TradingView alert webhooks (thin: parse, call services).

Outside ``/api`` because TradingView cannot send auth headers: the per-account secret in the
URL authenticates. Answers: 201 stored, 200 a repeat of a stored alert id, 400 with field
errors, 404 unknown or inactive token, 405 not POST, 413 body too large, 429 rate limited.
"""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from marketdata import tradingview as tv
from monitoring.metrics import ALT_DATA_EVENTS

logger = logging.getLogger(__name__)


@csrf_exempt
def tradingview_alert(request: HttpRequest, token: str) -> JsonResponse:
    """Store one TradingView alert as a signal for the hook's account."""
    if request.method != "POST":
        return JsonResponse({"detail": "POST only"}, status=405, headers={"Allow": "POST"})
    declared = request.META.get("CONTENT_LENGTH") or "0"
    # The declared length is refused before reading; the body read is checked again.
    if not declared.isdigit() or int(declared) > tv.MAX_BODY_BYTES:
        ALT_DATA_EVENTS.labels("tradingview", "refused").inc()
        return JsonResponse({"detail": f"body over {tv.MAX_BODY_BYTES} bytes"}, status=413)
    if len(request.body) > tv.MAX_BODY_BYTES:
        return JsonResponse({"detail": f"body over {tv.MAX_BODY_BYTES} bytes"}, status=413)
    hook = tv.tradingview_hook_for_token(token)
    if hook is None:
        ALT_DATA_EVENTS.labels("tradingview", "not_found").inc()
        return JsonResponse({"detail": "not found"}, status=404)
    now = tv.clock()
    if not tv.tradingview_rate_allow(hook, now=now):
        ALT_DATA_EVENTS.labels("tradingview", "rate_limited").inc()
        return JsonResponse({"detail": "rate limited"}, status=429, headers={"Retry-After": "60"})
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        ALT_DATA_EVENTS.labels("tradingview", "refused").inc()
        return JsonResponse({"errors": {"body": ["not valid UTF-8 JSON"]}}, status=400)
    try:
        alert = tv.alert_parse(body)
    except tv.AlertInvalid as exc:
        ALT_DATA_EVENTS.labels("tradingview", "refused").inc()
        logger.info("tradingview alert refused", extra={"hook": hook.key, "errors": exc.errors})
        return JsonResponse({"errors": exc.errors}, status=400)
    signal, created = tv.tradingview_signal_store(hook=hook, alert=alert, payload=body, now=now)
    ALT_DATA_EVENTS.labels("tradingview", "stored" if created else "duplicate").inc()
    return JsonResponse(
        {
            "id": signal.pk,
            "alert_id": signal.alert_id,
            "status": signal.status,
            "duplicate": not created,
        },
        status=201 if created else 200,
    )
