"""The dashboard's pages (overview, market, orders and trades, performance, risk, system).

Each view reads a bounded amount through selectors and renders a template; the page's script
(``static/rrr/live.js``) then keeps it live over ``/ws/v1/stream``. Actions (orders, halt,
resume, flatten) go through the REST API with the session and its CSRF token.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from urllib.parse import urlencode
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import make_aware
from django.views.decorators.csrf import ensure_csrf_cookie

from marketdata.models import Symbol
from marketdata.price_selectors import latest_book, latest_quote
from monitoring.engine.payloads import book_payload, quote_payload
from monitoring.selectors import component_results
from monitoring.stats_selectors import api_stats
from risk.selectors import risk_report
from rrr_site.api.roles import Role, role_of
from rrr_site.pages import selectors as s
from rrr_site.pages.rows import ORDER_FIELDS, fill_rows, fixed, order_rows
from trading.choices import OrderSide, OrderStatus, OrderType
from trading.models import Account, Order
from trading.portfolio_selectors import (
    equity_curve,
    performance_of,
    portfolio_summaries,
    positions_of,
    profit_by_symbol,
)

EQUITY_POINTS = 300
# A shorter equity history gets its figures over its own span: a year scaled up from minutes
# or days says nothing (10 minutes up 0.1 % showed an annualised return of 634,527 %).
ANNUALISE_FROM = timedelta(days=30)
# Under ANNUALISE_FROM: shown over the span; annualised_return and cagr, the span's return
# then, are total_return's row already.
OVER_THE_SPAN = ("volatility", "sharpe", "sortino", "calmar")
ANNUAL_ONLY = ("annualised_return", "cagr")
STATS_SECONDS = 5  # the system page's counts are shared this long between loads
CSV_CHUNK = 2000
NEEDS_VIEWER = "This page needs the viewer role: ask an admin to add you to the viewer group."


def viewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse (403) a signed-in user below the viewer role, as the API's reads of the same
    rows do: these pages show more than one granted account's (all research, market data)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if role_of(request.user) < Role.VIEWER:
            return HttpResponseForbidden(NEEDS_VIEWER, content_type="text/plain; charset=utf-8")
        return view(request, *args, **kwargs)

    return guarded


def page_context(request: HttpRequest, page: str) -> tuple[dict, Account | None]:
    """Return what every page shows (user, role, accounts, chosen account) and that account."""
    accounts = list(Account.objects.visible_to(request.user).order_by("name"))
    account = s.account_choice(accounts=accounts, pk=request.GET.get("account"))
    role = role_of(request.user)
    return {
        "page": page,
        "accounts": accounts,
        "account": account,
        "is_trader": role >= Role.TRADER,
        "is_admin": role >= Role.ADMIN,
        "role": role.name.lower(),
        # Engines, heartbeats and system events of these accounts only (None: staff, every one).
        "engine_accounts": engine_accounts(request.user, accounts),
    }, account


def engine_accounts(user, accounts: list[Account]) -> frozenset[str] | None:
    """Return the names of the accounts whose engines ``user`` may watch (None: every one)."""
    if user.is_active and (user.is_staff or user.is_superuser):
        return None
    return frozenset(a.name for a in accounts)


def components_of(names: frozenset[str] | None) -> list:
    """Return this process's component checks; an engine's only to who may see its account."""
    results = component_results()
    if names is None:
        return results
    return [c for c in results if c.name.startswith("engine:") and c.name[7:] in names]


@login_required
@ensure_csrf_cookie
def overview(request: HttpRequest) -> HttpResponse:
    """Equity curve, today's P&L, positions, open orders, fills, trading state, health."""
    from trading.runtime_control import trading_state_notice

    context, account = page_context(request, "overview")
    if account is not None:
        one = Account.objects.filter(pk=account.pk)
        fills = s.recent_fills(account=account, limit=25)
        context.update(
            summary=portfolio_summaries(accounts=one)[0],
            state_notice=trading_state_notice(account=account),
            positions=list(positions_of(accounts=one)),
            open_orders=s.open_orders(account=account),
            fills=fills,
            fill_rows=fill_rows(fills, order_link=False),
            equity=[
                {"ts": p.ts.isoformat(), "equity": str(p.equity)}
                for p in equity_curve(account=account, points=EQUITY_POINTS)
            ],
        )
    context["components"] = components_of(context["engine_accounts"])
    return render(request, "pages/overview.html", context)


@login_required
@viewer_required
@ensure_csrf_cookie
def market(request: HttpRequest) -> HttpResponse:
    """Candles with volume, overlays and fill markers, book, trades and the order ticket."""
    context, account = page_context(request, "market")
    symbols = list(Symbol.objects.filter(active=True).order_by("name"))
    wanted = request.GET.get("symbol")
    symbol = next((x for x in symbols if x.name == wanted), None)
    if symbol is None:  # the first symbol with a chart (not an empty one that sorts first)
        symbol = next((x for x in symbols if s.chart_timeframes(symbol=x)), None)
        symbol = symbol or (symbols[0] if symbols else None)
    if symbol is not None:
        timeframes = s.chart_timeframes(symbol=symbol)
        timeframe = request.GET.get("tf")
        if timeframe not in timeframes:
            timeframe = "1m" if "1m" in timeframes else (timeframes[0] if timeframes else "1m")
        timeframes = timeframes or [timeframe]  # the picker never shows an empty list
        bars = s.chart_bars(symbol=symbol, timeframe=timeframe)
        since = parse_datetime(bars[0]["ts"]) if bars else None
        quote, book = latest_quote(symbol=symbol.name), latest_book(symbol=symbol.name)
        context["chart"] = {
            "symbol": symbol.name,
            "timeframe": timeframe,
            "bars": bars,
            "markers": s.fill_markers(account=account, symbol=symbol, since=since),
            "trades": s.recent_trades(symbol=symbol),
            "quote": quote_payload(quote, symbol=symbol.name) if quote else None,
            "book": book_payload(book, symbol=symbol.name) if book else None,
            "account": account.pk if account else None,
            "account_name": account.name if account else None,
        }
        context.update(symbol=symbol, timeframes=timeframes, timeframe=timeframe)
    context.update(symbols=symbols, order_types=[OrderType.MARKET, OrderType.LIMIT, OrderType.STOP])
    return render(request, "pages/market.html", context)


def _when(raw: str | None) -> datetime | None:
    if not raw:
        return None
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        moment = datetime(day.year, day.month, day.day) if day else None
    if moment is not None and moment.tzinfo is None:
        moment = make_aware(moment)
    return moment


def history_filter(request: HttpRequest) -> tuple[s.HistoryFilter, dict[str, str]]:
    """Return the filters of the orders/trades pages and the errors of the ones refused."""
    errors: dict[str, str] = {}
    get = request.GET
    side = get.get("side", "")
    if side and side not in OrderSide.values:
        errors["side"] = f"one of {', '.join(OrderSide.values)}"
        side = ""
    status = get.get("status", "")
    if status and status not in OrderStatus.values:
        errors["status"] = f"one of {', '.join(OrderStatus.values)}"
        status = ""
    times = {}
    for name in ("since", "until"):
        try:
            times[name] = _when(get.get(name))
        except ValueError:
            times[name] = None
        if get.get(name) and times[name] is None:
            errors[name] = "a date (YYYY-MM-DD) or ISO-8601 time"
    symbol = get.get("symbol", "").strip().upper()[:32]
    return s.HistoryFilter(symbol=symbol, side=side, status=status, **times), errors


def _older_link(request: HttpRequest, key: str, cursor: str | None) -> str | None:
    """Return this page's query string with ``key`` set to ``cursor`` (None without a cursor)."""
    if cursor is None:
        return None
    query = request.GET.copy()
    query[key] = cursor
    return "?" + query.urlencode()


def _history(request: HttpRequest, account: Account, filters, errors: dict) -> dict:
    """Return one keyset page of the account's orders and of its fills, and their older links."""
    pages = {}
    for key, rows, ts_field in (
        ("orders", s.order_history(account=account, filters=filters).values(*ORDER_FIELDS),
         "created_at"),
        ("fills", s.fill_history(account=account, filters=filters), "ts"),
    ):  # fmt: skip
        before = f"{key}_before"
        try:
            page, cursor = s.history_page(rows, cursor=request.GET.get(before), ts_field=ts_field)
        except ValueError:
            errors[before] = "a cursor from an “older” link"
            page, cursor = [], None
        pages[key] = page
        pages[f"{key}_older"] = _older_link(request, before, cursor)
    pages["order_rows"] = order_rows(pages["orders"])
    pages["fill_rows"] = fill_rows(pages["fills"])
    return pages


@login_required
def orders(request: HttpRequest) -> HttpResponse:
    """Filterable order and trade history of the chosen account, newest first, one keyset page
    of each (its "older" link goes one page back); live over the ``orders`` and ``fills``
    channels on the newest page."""
    context, account = page_context(request, "orders")
    filters, errors = history_filter(request)
    if account is not None:
        context.update(_history(request, account, filters, errors))
    paging = {"orders_before", "fills_before"}
    context.update(
        filters=filters,
        errors=errors,
        statuses=OrderStatus.values,
        query=urlencode([(k, v) for k, v in request.GET.items() if k not in paging]),
        limit=s.HISTORY_ROWS,
        newest=not any(request.GET.get(k) for k in paging),
        live_filter={
            "symbol": filters.symbol,
            "side": filters.side,
            "status": filters.status,
            "since": filters.since.isoformat() if filters.since else None,
            "until": filters.until.isoformat() if filters.until else None,
        },  # fmt: skip
    )
    return render(request, "pages/orders.html", context, status=400 if errors else 200)


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def history_csv(request: HttpRequest, kind: str) -> HttpResponse:
    """Stream the filtered orders or fills of the chosen account as CSV (every matching row)."""
    if kind not in {"orders", "fills"}:
        raise Http404("orders.csv or fills.csv")
    _, account = page_context(request, "orders")
    filters, errors = history_filter(request)
    if errors:
        return HttpResponse(
            "; ".join(f"{k}: {v}" for k, v in errors.items()), status=400, content_type="text/plain"
        )
    if account is None:
        raise Http404("No account")
    if kind == "orders":
        header = ["id", "created_at", "symbol", "side", "type", "quantity", "price",
                  "stop_price", "status", "filled_quantity", "average_fill_price", "fees",
                  "strategy", "reject_reason"]  # fmt: skip
        rows = s.order_history(account=account, filters=filters)
        line = lambda o: [o.pk, o.created_at.isoformat(), o.symbol.name, o.side, o.type,  # noqa: E731
                          o.quantity, o.price, o.stop_price, o.status, o.filled_quantity,
                          o.average_fill_price, o.fees, o.strategy, o.reject_reason]  # fmt: skip
    else:
        header = ["id", "ts", "symbol", "side", "quantity", "price", "fee", "order_id",
                  "liquidity"]  # fmt: skip
        rows = s.fill_history(account=account, filters=filters)
        line = lambda f: [f["id"], f["ts"].isoformat(), f["symbol__name"], f["side"],  # noqa: E731
                          f["quantity"], f["price"], f["fee"], f["order_id"],
                          f["liquidity"]]  # fmt: skip
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows.iterator(chunk_size=CSV_CHUNK):
            yield writer.writerow(["" if v is None else v for v in line(row)])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{account.name}-{kind}.csv"'
    return response


@login_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One order of a visible account: fields, fills, children and its state transitions."""
    context, _ = page_context(request, "orders")
    visible = Account.objects.visible_to(request.user)
    order = (
        Order.objects.filter(pk=pk, account__in=visible).select_related("symbol", "account").first()
    )
    if order is None:
        raise Http404("No such order")
    context.update(
        order=order,
        timeline=s.order_timeline(order=order),
        fills=list(order.fills.order_by("ts", "pk")[: s.HISTORY_ROWS]),
        children=list(order.children.select_related("symbol").order_by("created_at")[:20]),
    )
    return render(request, "pages/order_detail.html", context)


@login_required
def order_by_client_id(request: HttpRequest, client_id: str) -> HttpResponse:
    """Redirect to the page of the visible account's order with this client id (the id the
    stream's ``order`` and ``fill`` messages carry: 32 hex digits, or a dashed UUID)."""
    try:
        client_id = UUID(client_id)
    except ValueError:
        raise Http404("No such order") from None
    visible = Account.objects.visible_to(request.user)
    pk = (
        Order.objects.filter(client_order_id=client_id, account__in=visible)
        .values_list("pk", flat=True)
        .first()
    )
    if pk is None:
        raise Http404("No such order")
    return redirect("pages-order", pk=pk)


def _performance(account: Account) -> dict:
    """Return ``performance_of``'s figures (the trade metrics the round-trip tally's background
    refresh stored, exact at any number of fills, with their age)."""
    return performance_of(account=account, bucket_seconds=3600, annualise_from=ANNUALISE_FROM)


def _metric_rows(perf: dict) -> list[tuple[str, str, str]]:
    """Return (name, value, baseline value) of each metric, at 4 decimals ("—" when absent);
    a history under ANNUALISE_FROM has no annual rows and says which rows are over its span."""
    baseline = (perf.get("baseline") or {}).get("metrics") or {}
    annualised = perf.get("annualised", True)
    return [
        (
            name if annualised or name not in OVER_THE_SPAN else f"{name} over the span",
            fixed(value, 4),
            fixed(baseline.get(name), 4),
        )
        for name, value in (perf.get("metrics") or {}).items()
        if annualised or name not in ANNUAL_ONLY
    ]


@login_required
def performance(request: HttpRequest) -> HttpResponse:
    """Live metrics beside holding cash and buy-and-hold, drawdown, monthly grid, P&L per symbol."""
    context, account = page_context(request, "performance")
    if account is not None:
        perf = _performance(account)
        # Positions are one a symbol: the symbols the account holds or held.
        per_symbol = profit_by_symbol(account=account, fill_stats=False)
        context.update(
            perf=perf,
            summary=portfolio_summaries(accounts=Account.objects.filter(pk=account.pk))[0],
            metric_rows=_metric_rows(perf),
            annualise_days=ANNUALISE_FROM.days,
            equity=[
                {"ts": p.ts.isoformat(), "equity": str(p.equity), "drawdown": p.drawdown}
                for p in equity_curve(account=account, points=EQUITY_POINTS)
            ],
            monthly=s.monthly_returns(account=account),
            per_symbol=per_symbol,
            holds=s.buy_and_hold(
                symbols=[r["symbol"] for r in per_symbol], start=perf["start"], end=perf["end"]
            ),
        )
    return render(request, "pages/performance.html", context)


@login_required
def risk(request: HttpRequest) -> HttpResponse:
    """Limit utilisation, VaR/CVaR, drawdown against its limit, events, kill-switch state."""
    context, account = page_context(request, "risk")
    if account is not None:
        from risk.models import RiskEvent

        report = risk_report(account=account)
        dd_limit = next((x for x in report["limits"] if x["kind"] == "max_drawdown"), None)
        context.update(
            report=report,
            dd_limit=dd_limit,
            events=list(RiskEvent.objects.filter(account=account).order_by("-ts")[:50]),
        )
    return render(request, "pages/risk.html", context)


def _stats(account_ids: list[int]) -> dict:
    """Return ``api_stats`` over these accounts, shared for ``STATS_SECONDS`` by the loads that
    see the same accounts (its ~20 counts and probes are the page's slowest read; the page shows
    the figures' time). The large tables' counts are PostgreSQL's estimates (marked ≈)."""
    key = "pages:stats:" + hashlib.sha256(repr(sorted(account_ids)).encode()).hexdigest()
    stats = cache.get(key)
    if stats is None:
        stats = api_stats(accounts=Account.objects.filter(pk__in=account_ids), estimate=True)
        cache.set(key, stats, STATS_SECONDS)
    return stats


@login_required
def system(request: HttpRequest) -> HttpResponse:
    """Component health, heartbeats, queue depth, system events and the audit log."""
    context, _ = page_context(request, "system")
    context.update(
        components=components_of(context["engine_accounts"]),
        stats=_stats([a.pk for a in context["accounts"]]),
        beats=s.heartbeats(accounts=context["engine_accounts"]),
        events=s.system_events(accounts=context["engine_accounts"]),
        audit=s.audit_entries() if context["is_admin"] else [],
    )
    return render(request, "pages/system.html", context)
