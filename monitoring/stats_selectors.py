"""The API's ``/stats``: counts, feed lag, engine uptime and heartbeat, task queue depth."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone

from backtesting.models import BacktestRun
from marketdata.models import Bar, Symbol
from models_ml.models import MLModel, Prediction
from trading.choices import OPEN_ORDER_STATUSES
from trading.models import Account, FillDay, Order, Position
from trading.selectors import engine_status

logger = logging.getLogger(__name__)
PROCESS_STARTED = time.time()  # this web process's start, for its uptime


BAR_1M = timedelta(minutes=1)


def _latest_bar(symbols: list[int]) -> datetime | None:
    """Return the newest 1m bar's start over ``symbols`` (one index probe each)."""
    bars = Bar.objects.filter(timeframe="1m").order_by("-ts")
    stamps = [bars.filter(symbol_id=pk).values_list("ts", flat=True).first() for pk in symbols]
    stamps = [ts for ts in stamps if ts is not None]
    return max(stamps) if stamps else None


def _queue_depth() -> int | None:
    """Return how many tasks wait on the django-q2 broker (None when it cannot be asked)."""
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size())
    except Exception:  # a broken broker is reported as unknown here; /health/ready says why
        logger.warning("stats: the task broker did not answer queue_size", exc_info=True)
        return None


EXACT_BELOW = 100_000  # rows: an estimate above this is shown as one, below it is counted


def row_count(
    rows: QuerySet, *, estimate: bool, exact_below: int = EXACT_BELOW
) -> tuple[int, bool]:
    """Return (count, estimated): with ``estimate`` on PostgreSQL, the planner's row estimate
    for ``rows`` (one EXPLAIN, no scan) when it is at least ``exact_below``; else ``count()``."""
    import json

    from django.db import connections

    connection = connections[rows.db]
    if estimate and connection.vendor == "postgresql":
        from django.core.exceptions import EmptyResultSet

        try:
            sql, params = rows.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # e.g. ``account_id IN ()``: nothing can match
            return 0, False
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        guess = int((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])
        if guess >= exact_below:
            return guess, True
    return rows.count(), False


def api_stats(
    *, accounts: QuerySet[Account], now: datetime | None = None, estimate: bool = False
) -> dict:
    """Return the counts (over ``accounts`` for account data), feed lag, engines and queue.

    With ``estimate``, the large tables' counts (orders, fills, predictions) are the planner's
    estimates on PostgreSQL once they pass ``EXACT_BELOW`` rows, named in ``estimated``.
    """
    now = now or timezone.now()
    ids = list(accounts.values_list("pk", flat=True))
    big = {
        "orders": Order.objects.filter(account_id__in=ids),
        "predictions": Prediction.objects.all(),
    }
    sized = {name: row_count(rows, estimate=estimate) for name, rows in big.items()}
    # Exact and cheap: the per-day fill counts the database keeps with the fills (FillDay).
    fills = FillDay.objects.filter(account_id__in=ids).aggregate(n=Sum("fills"))["n"] or 0
    sized["fills"] = (fills, False)
    symbols = list(Symbol.objects.filter(active=True).values_list("pk", flat=True))
    latest = _latest_bar(symbols)
    engines = [engine_status(account=a) for a in accounts]
    beats = [e["last_heartbeat"] for e in engines if e["last_heartbeat"] is not None]
    running = [e for e in engines if e["running"]]
    counts = {
        "accounts": accounts.count(),
        "orders": sized["orders"][0],
        "open_orders": Order.objects.filter(
            account__in=accounts, status__in=OPEN_ORDER_STATUSES
        ).count(),
        "fills": sized["fills"][0],
        "open_positions": Position.objects.filter(account__in=accounts).exclude(quantity=0).count(),
        "symbols": len(symbols),
        "models": MLModel.objects.count(),
        "active_models": MLModel.objects.filter(active=True).count(),
        "predictions": sized["predictions"][0],
        "backtests": BacktestRun.objects.count(),
    }
    return {
        "as_of": now,
        "counts": counts,
        "estimated": sorted(name for name, (_, guessed) in sized.items() if guessed),
        "latest_bar": latest,
        # From the bar's close (when a live feed stores it), so a current feed reads ~0, not 60+.
        "feed_lag_seconds": (max(0.0, (now - latest - BAR_1M).total_seconds()) if latest else None),
        "engines_running": len(running),
        "engine_uptime_seconds": max(
            ((now - e["started_at"]).total_seconds() for e in running if e["started_at"]),
            default=None,
        ),
        "last_heartbeat": max(beats) if beats else None,
        "api_uptime_seconds": time.time() - PROCESS_STARTED,
        "queue_depth": _queue_depth(),
    }
