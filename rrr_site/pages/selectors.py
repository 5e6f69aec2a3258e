"""Reads of the dashboard's pages: each bounded (limits, database aggregates), never all rows.

These compose the apps' selectors (the same ones the API reads through) and add the few page
reads no endpoint needs: chart bars with the account's fill markers, an order's history, the
monthly returns grid, buy-and-hold beside the live account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from marketdata.models import Bar, Symbol, TradeTick
from monitoring.models import AuditLog, SystemEvent
from rrr_site.api.pagination import keyset_page
from trading.choices import OPEN_ORDER_STATUSES
from trading.models import Account, Fill, Order
from trading.portfolio_selectors import fills_of, profit_by_period

CHART_BARS = 300
RECENT_ROWS = 50
HISTORY_ROWS = 100  # rows the orders/trades page renders (the CSV export has every one)
MONTH_POINTS = 400  # months of the monthly grid (33 years)


def account_choice(*, accounts: list[Account], pk: str | None) -> Account | None:
    """Return the visible account ``pk``, else the first visible one (None when none is).

    ``accounts`` is the visible accounts already read for the page's account picker (one query
    for both)."""
    wanted = pk.strip() if pk else ""
    chosen = next((a for a in accounts if str(a.pk) == wanted), None) if wanted else None
    return chosen or (accounts[0] if accounts else None)


def open_orders(*, account: Account, limit: int = RECENT_ROWS) -> list[Order]:
    """Return the account's working orders, newest first."""
    rows = account.orders.filter(status__in=list(OPEN_ORDER_STATUSES)).select_related("symbol")
    return list(rows.order_by("-created_at")[:limit])


def recent_fills(*, account: Account, symbol: str | None = None, limit: int = RECENT_ROWS):
    """Return the account's newest fills (of one symbol when given) as the API's ``/trades``
    reads them (``fills_of`` rows, newest first)."""
    one = Account.objects.filter(pk=account.pk)
    return list(fills_of(accounts=one, symbol=symbol).order_by("-ts", "-id")[:limit])


def _one_origin(bars):
    """Return venue bars only, or the simulated market's when the symbol has no venue bars (a
    simulated session): never both in one chart or figure."""
    real = bars.filter(simulated=False)
    return real if real.exists() else bars.filter(simulated=True)


def chart_timeframes(*, symbol: Symbol) -> list[str]:
    """Return the timeframes stored for ``symbol`` (shortest first): venue bars' when it has
    any, else the simulated market's (as ``_one_origin``)."""
    from marketdata.engine.events import TIMEFRAME_SECONDS

    # One query of one index probe per (timeframe, origin): a DISTINCT over the symbol's bars
    # would read every bar, a query per probe costs a round trip each, and the ORM spends ~2 ms
    # compiling each EXISTS subquery (hence SQL, the same on SQLite and PostgreSQL).
    probe = (
        f"SELECT %s, %s WHERE EXISTS (SELECT 1 FROM {Bar._meta.db_table} "
        "WHERE symbol_id = %s AND timeframe = %s AND simulated = %s)"
    )
    params: list = []
    for tf in TIMEFRAME_SECONDS:
        for simulated in (False, True):
            params += [tf, simulated, symbol.pk, tf, simulated]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([probe] * (len(params) // 5)), params)
        found = cursor.fetchall()
    real = [tf for tf, simulated in found if not simulated]
    stored = real or [tf for tf, _ in found]
    return sorted(stored, key=lambda tf: TIMEFRAME_SECONDS[tf])


def chart_bars(*, symbol: Symbol, timeframe: str, limit: int = CHART_BARS) -> list[dict]:
    """Return the last ``limit`` bars of ``symbol`` at ``timeframe``, oldest first."""
    rows = (
        _one_origin(Bar.objects.filter(symbol=symbol, timeframe=timeframe))
        .order_by("-ts")
        .values("ts", "open", "high", "low", "close", "volume")[:limit]
    )
    return [{**r, "ts": r["ts"].isoformat()} for r in reversed(list(rows))]


def fill_markers(*, account: Account | None, symbol: Symbol, since: datetime | None) -> list[dict]:
    """Return the account's fills of ``symbol`` since ``since`` as chart markers (at most 500)."""
    if account is None or since is None:
        return []
    rows = (
        Fill.objects.filter(account=account, symbol=symbol, ts__gte=since)
        .order_by("-ts")
        .values("ts", "side", "price", "quantity", "order__strategy")[:500]
    )
    return [
        {
            "ts": r["ts"].isoformat(),
            "side": r["side"],
            "price": str(r["price"]),
            "quantity": str(r["quantity"]),
            "strategy": r["order__strategy"] or "manual",
        }
        for r in rows
    ]


def recent_trades(*, symbol: Symbol, limit: int = RECENT_ROWS) -> list[dict]:
    """Return the symbol's newest market trades, newest first."""
    rows = TradeTick.objects.filter(symbol=symbol).order_by("-ts")[:limit]
    return [
        {"ts": t.ts.isoformat(), "price": str(t.price), "size": str(t.size), "side": t.side or ""}
        for t in rows
    ]


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """The filters of the orders and trades pages (all optional)."""

    symbol: str = ""
    side: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _filtered(rows: QuerySet, f: HistoryFilter, ts_field: str) -> QuerySet:
    if f.symbol:
        rows = rows.filter(symbol__name=f.symbol)
    if f.side:
        rows = rows.filter(side=f.side)
    if f.since:
        rows = rows.filter(**{f"{ts_field}__gte": f.since})
    if f.until:
        rows = rows.filter(**{f"{ts_field}__lt": f.until})
    return rows


def order_history(*, account: Account, filters: HistoryFilter) -> QuerySet[Order]:
    """Return the account's orders matching ``filters``, newest first (slice it)."""
    rows = _filtered(account.orders.select_related("symbol"), filters, "created_at")
    if filters.status:
        rows = rows.filter(status=filters.status)
    return rows.order_by("-created_at", "-pk")


def fill_history(*, account: Account, filters: HistoryFilter) -> QuerySet:
    """Return the account's fills matching ``filters`` as the API's ``/trades`` reads them
    (``fills_of`` rows: dicts with ``symbol__name`` and ``order_id``), newest first."""
    rows = fills_of(
        accounts=Account.objects.filter(pk=account.pk),
        symbol=filters.symbol or None,
        start=filters.since,
        end=filters.until,
    )
    if filters.side:
        rows = rows.filter(side=filters.side)
    return rows.order_by("-ts", "-id")


def history_page(
    rows: QuerySet, *, cursor: str | None, ts_field: str, limit: int = HISTORY_ROWS
) -> tuple[list, str | None]:
    """Return up to ``limit`` rows older than ``cursor`` (newest first) and the cursor of the
    page after them (None on the last page), as the API's keyset pages: one index range scan
    at any depth. Raises ``ValueError`` for a malformed cursor."""
    from rest_framework.exceptions import ValidationError

    try:
        return keyset_page(rows, limit=limit, cursor=cursor or None, ts_field=ts_field)
    except ValidationError:
        raise ValueError("malformed cursor") from None


def order_timeline(*, order: Order) -> list[dict]:
    """Return the order's state transitions as stored: created, each fill, cancel asked, closed,
    and every audit entry about it, in time order."""
    steps = [{"ts": order.created_at, "state": "created", "detail": f"{order.type} {order.side}"}]
    for fill in order.fills.order_by("ts", "pk")[:HISTORY_ROWS]:
        steps.append({"ts": fill.ts, "state": "fill", "detail": f"{fill.quantity} @ {fill.price}"})
    if order.cancel_requested_at:
        steps.append({"ts": order.cancel_requested_at, "state": "cancel requested", "detail": ""})
    audits = AuditLog.objects.filter(object_type__iendswith="order", object_id=str(order.pk))
    for entry in audits.order_by("at")[:HISTORY_ROWS]:
        steps.append({"ts": entry.at, "state": entry.action, "detail": entry.actor_repr})
    if order.closed_at:
        steps.append({"ts": order.closed_at, "state": order.status, "detail": order.reject_reason})
    elif order.status not in {"pending"}:
        steps.append({"ts": order.updated_at, "state": order.status, "detail": "current"})
    return sorted(steps, key=lambda s: s["ts"])


def monthly_returns(*, account: Account) -> list[dict]:
    """Return each month's return, oldest first, as the API's ``/profit/month`` computes it
    (``profit_by_period``: equity at the month's last snapshot against the month before, the
    first month against the initial capital)."""
    rows = profit_by_period(account=account, period="month", count=MONTH_POINTS)
    return [
        {"year": r["period"].year, "month": r["period"].month, "return": r["profit_ratio"]}
        for r in reversed(rows)
    ]


def buy_and_hold(*, symbols: Iterable[str], start: datetime | None, end: datetime | None):
    """Return each symbol's buy-and-hold return over [start, end] from its stored 1m/1h bars."""
    if start is None or end is None:
        return []
    rows = []
    for name in sorted(set(symbols)):
        bars = _one_origin(Bar.objects.filter(symbol__name=name, ts__gte=start, ts__lte=end))
        timeframe = bars.values_list("timeframe", flat=True).first()
        if timeframe is None:
            continue
        bars = bars.filter(timeframe=timeframe)
        first = bars.order_by("ts").values_list("open", flat=True).first()
        last = bars.order_by("-ts").values_list("close", flat=True).first()
        if first:
            rows.append({"symbol": name, "return": last / first - 1, "timeframe": timeframe})
    return rows


def system_events(
    *, accounts: Iterable[str] | None = None, limit: int = RECENT_ROWS
) -> list[SystemEvent]:
    """Return the newest system events other than heartbeats (of ``accounts`` only, unless None).

    Every event names the account of the engine that wrote it; one naming no account (or
    another account) reaches staff only, as on the stream's account channels."""
    events = SystemEvent.objects.exclude(kind="heartbeat")
    if accounts is not None:
        events = events.filter(context__account__in=sorted(accounts))
    return list(events.order_by("-ts")[:limit])


def heartbeats(*, accounts: Iterable[str] | None = None, limit: int = 20) -> list[SystemEvent]:
    """Return the newest heartbeat of each component (from the last 200 beats), of ``accounts``
    only unless None."""
    beats = SystemEvent.objects.filter(kind="heartbeat")
    if accounts is not None:
        beats = beats.filter(context__account__in=sorted(accounts))
    latest: dict[str, SystemEvent] = {}
    for beat in beats.order_by("-ts")[:200]:
        key = str(beat.context.get("account", beat.component))
        latest.setdefault(key, beat)
    return list(latest.values())[:limit]


def audit_entries(*, limit: int = RECENT_ROWS) -> list[AuditLog]:
    """Return the newest audit log entries."""
    return list(AuditLog.objects.order_by("-at")[:limit])
