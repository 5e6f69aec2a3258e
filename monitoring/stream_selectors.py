"""Reads for the WebSocket stream: the snapshot each channel starts with, so no client starts blank.

Every snapshot is JSON-safe (money, prices and sizes as decimal strings, times ISO-8601 UTC) and
uses the same item shapes as the channel's live messages (``monitoring.engine.payloads``).
Account channels read only the accounts passed in (the connection's visible accounts).
"""

from __future__ import annotations

from django.db.models import QuerySet

from monitoring.engine.payloads import (
    bar_payload,
    book_payload,
    quote_payload,
    trade_payload,
)
from monitoring.engine.stream import Channel
from monitoring.realtime import stream_jsonable

SNAPSHOT_BARS = 200  # closed bars of the newest timeframe in a market snapshot
SNAPSHOT_TRADES = 50
SNAPSHOT_ROWS = 50  # recent orders, fills and risk events
BOOK_DEPTH = 10


def symbol_known(name: str) -> bool:
    """Say whether ``name`` is a stored symbol."""
    from marketdata.models import Symbol

    return Symbol.objects.filter(name=name).exists()


def backtest_exists(run_id: int) -> bool:
    """Say whether backtest run ``run_id`` exists."""
    from backtesting.models import BacktestRun

    return BacktestRun.objects.filter(pk=run_id).exists()


def stream_snapshot(channel: Channel, accounts: QuerySet, *, every_account: bool = False) -> dict:
    """Return the snapshot of ``channel`` for a connection that sees ``accounts``
    (``every_account``: staff, who also see engines that name no account)."""
    readers = {
        "market": lambda: market_snapshot(symbol=channel.key),
        "orders": lambda: orders_snapshot(accounts=accounts),
        "fills": lambda: fills_snapshot(accounts=accounts),
        "portfolio": lambda: portfolio_snapshot(accounts=accounts),
        "risk": lambda: risk_snapshot(accounts=accounts),
        "system": lambda: system_snapshot(accounts=None if every_account else accounts),
        "backtests": lambda: backtest_snapshot(run_id=int(channel.key)),
    }
    return stream_jsonable(readers[channel.family]())


def market_snapshot(*, symbol: str) -> dict:
    """Return the last closed bars, quote, book top-N and recent trades of ``symbol``."""
    from marketdata.models import Bar, TradeTick
    from marketdata.price_selectors import latest_book, latest_quote

    bars = Bar.objects.filter(symbol__name=symbol)
    newest = bars.order_by("-ts").values_list("timeframe", flat=True).first()
    timeframe = "1m" if bars.filter(timeframe="1m").exists() else newest
    rows = list(bars.filter(timeframe=timeframe).order_by("-ts")[:SNAPSHOT_BARS]) if newest else []
    trades = TradeTick.objects.filter(symbol__name=symbol).order_by("-ts")[:SNAPSHOT_TRADES]
    quote, book = latest_quote(symbol=symbol), latest_book(symbol=symbol)
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "bars": [bar_payload(row, symbol=symbol, closed=True) for row in reversed(rows)],
        "quote": quote_payload(quote, symbol=symbol) if quote else None,
        "book": book_payload(book, symbol=symbol, depth=BOOK_DEPTH) if book else None,
        "trades": [trade_payload(t, symbol=symbol) for t in reversed(list(trades))],
    }


def order_payload(order) -> dict:
    """Return the ``order`` message data of a stored order."""
    return {
        "account": order.account.name,
        "client_order_id": str(order.client_order_id),
        "symbol": order.symbol.name,
        "side": order.side,
        "type": order.type,
        "quantity": order.quantity,
        "price": order.price,
        "stop_price": order.stop_price,
        "status": order.status,
        "filled_quantity": order.filled_quantity,
        "average_fill_price": order.average_fill_price,
        "reason": order.reject_reason,
        "ts": order.updated_at,
    }


def orders_snapshot(*, accounts: QuerySet) -> dict:
    """Return the open orders and the most recent orders of ``accounts``."""
    from trading.choices import OPEN_ORDER_STATUSES
    from trading.models import Order

    rows = Order.objects.filter(account__in=accounts).select_related("account", "symbol")
    open_statuses = list(OPEN_ORDER_STATUSES)
    working = rows.filter(status__in=open_statuses).order_by("-updated_at")
    recent = rows.exclude(status__in=open_statuses).order_by("-updated_at")[:SNAPSHOT_ROWS]
    return {
        "accounts": _names(accounts),
        "open": [order_payload(o) for o in working[:1000]],
        "recent": [order_payload(o) for o in recent],
    }


def fills_snapshot(*, accounts: QuerySet) -> dict:
    """Return the most recent fills of ``accounts``."""
    from trading.models import Fill

    rows = (
        Fill.objects.filter(account__in=accounts)
        .select_related("account", "symbol", "order")
        .order_by("-ts", "-pk")[:SNAPSHOT_ROWS]
    )
    return {"accounts": _names(accounts), "fills": [fill_payload(f) for f in rows]}


def fill_payload(fill) -> dict:
    """Return the ``fill`` message data of a stored fill."""
    return {
        "account": fill.account.name,
        "client_order_id": str(fill.order.client_order_id),
        "symbol": fill.symbol.name,
        "side": fill.side,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "ts": fill.ts,
    }


def portfolio_snapshot(*, accounts: QuerySet) -> dict:
    """Return cash, equity, P&L and positions of each of ``accounts``."""
    from trading.portfolio_selectors import portfolio_summaries, positions_of

    positions: dict[int, list[dict]] = {}
    for p in positions_of(accounts=accounts):
        positions.setdefault(p.account_id, []).append(
            {
                "symbol": p.symbol.name,
                "quantity": p.quantity,
                "average_price": p.average_price,
                "mark_price": p.mark_price,
                "unrealized_pnl": p.unrealized_pnl,
                "realized_pnl": p.realized_pnl,
            }
        )
    rows = []
    for summary in portfolio_summaries(accounts=accounts):
        rows.append(
            {
                "account": summary["name"],
                "ts": summary["as_of"],
                "cash": summary["cash"],
                "equity": summary["equity"],
                "daily_pnl": summary["daily_pnl"],
                "total_pnl": summary["total_pnl"],
                "realized_pnl": summary["realized_pnl"],
                "unrealized_pnl": summary["unrealized_pnl"],
                "trading_state": summary["trading_state"],
                "positions": positions.get(summary["account"], []),
            }
        )
    return {"accounts": rows}


def risk_snapshot(*, accounts: QuerySet) -> dict:
    """Return the trading state of each of ``accounts`` and their recent risk events."""
    from risk.models import RiskEvent

    states = [
        {
            "account": a.name,
            "state": getattr(getattr(a, "trading_state", None), "state", "active"),
            "reason": getattr(getattr(a, "trading_state", None), "reason", ""),
        }
        for a in accounts.select_related("trading_state").order_by("name")
    ]
    events = (
        RiskEvent.objects.filter(account__in=accounts)
        .select_related("account")
        .order_by("-ts", "-pk")[:SNAPSHOT_ROWS]
    )
    return {
        "states": states,
        "events": [
            {
                "account": e.account.name if e.account else None,
                "kind": e.kind,
                "severity": e.severity,
                "message": e.message,
                "ts": e.ts,
            }
            for e in events
        ],
    }


def system_snapshot(*, accounts: QuerySet | None = None) -> dict:
    """Return the last heartbeat of each engine of ``accounts`` (None: every engine's) and the
    active models. A heartbeat carries its account's order and fill counts: one account's."""
    from models_ml.models import MLModel
    from monitoring.models import SystemEvent

    beats = SystemEvent.objects.filter(kind="heartbeat")
    if accounts is not None:
        beats = beats.filter(context__account__in=list(accounts.values_list("name", flat=True)))
    beats = beats.order_by("-ts")[:200]
    latest: dict[str, dict] = {}
    for beat in beats:
        account = str(beat.context.get("account", beat.component))
        latest.setdefault(account, {"ts": beat.ts, **beat.context, "account": account})
    models = MLModel.objects.filter(active=True).order_by("name")
    return {
        "heartbeats": list(latest.values()),
        "models": [{"name": m.name, "version": m.version, "active": True} for m in models],
    }


def backtest_snapshot(*, run_id: int) -> dict:
    """Return the stored progress of backtest ``run_id`` (done is a percentage of 100)."""
    from backtesting.models import BacktestRun

    run = BacktestRun.objects.filter(pk=run_id).values("status", "progress").first() or {}
    fraction = float(run.get("progress") or 0.0)
    return {
        "run": run_id,
        "done": round(fraction * 100),
        "total": 100,
        "fraction": fraction,
        "status": run.get("status", "unknown"),
    }


def _names(accounts: QuerySet) -> list[str]:
    return sorted(accounts.values_list("name", flat=True))
