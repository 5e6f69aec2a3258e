"""Server-rendered dashboard: one page that reads from every app's selectors."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketdata.selectors import symbols_active
from risk.selectors import risk_events_recent
from trading.selectors import accounts_overview, orders_recent


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the overview of the accounts the user may see: positions, orders, risk events."""
    context = {
        "accounts": accounts_overview(user=request.user),
        "orders": orders_recent(user=request.user, limit=25),
        "risk_events": risk_events_recent(user=request.user, limit=10),
        "symbols": symbols_active(),
    }
    return render(request, "dashboard.html", context)
