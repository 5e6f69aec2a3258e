"""Store a run's round trips in bulk: COPY on PostgreSQL, ``bulk_create`` elsewhere.

A 200,000-bar run has thousands of trades; ``bulk_create`` builds one parameter per field per
trade through the ORM's compiler (about 0.5 s for 4,000 trades), COPY streams the same values.
Each value is prepared by its model field (``get_db_prep_save``), as ``bulk_create`` prepares it,
so both paths store the same rows (values the field would pass unchanged are passed as they
are). Called inside the caller's transaction: the trades commit with the run's metrics or not
at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models

from backtesting.engine.result import RoundTrip
from backtesting.models import BacktestRun, BacktestTrade

# Every stored column but the id, in the model's order; ``run`` travels as its id.
FIELDS = [f for f in BacktestTrade._meta.concrete_fields if not f.primary_key]
# Values a field's get_db_prep_save returns unchanged on PostgreSQL (a finite Decimal, an aware
# datetime, a str, a float, an int): passed as they are, anything else goes through the field.
_AS_IS: dict[type, Callable[[Any], bool]] = {
    models.DecimalField: lambda v: type(v) is Decimal and v.is_finite(),
    models.DateTimeField: lambda v: isinstance(v, datetime) and v.tzinfo is not None,
    models.CharField: lambda v: type(v) is str,
    models.FloatField: lambda v: type(v) is float,
    models.PositiveIntegerField: lambda v: type(v) is int and v >= 0,
}


def trades_store(*, run: BacktestRun, trades: Sequence[RoundTrip]) -> int:
    """Insert ``trades`` as ``run``'s BacktestTrade rows; return how many were written."""
    if not trades:
        return 0
    if connection.vendor == "postgresql":
        checks = [_AS_IS.get(type(f)) for f in FIELDS]
        rows = [_prepared(_row(run, t), checks) for t in trades]
    else:
        rows = [_row(run, t) for t in trades]  # bulk_create prepares them itself
    if connection.vendor != "postgresql":
        BacktestTrade.objects.bulk_create(
            BacktestTrade(**dict(zip((f.attname for f in FIELDS), row, strict=True)))
            for row in rows
        )
        return len(rows)
    table = connection.ops.quote_name(BacktestTrade._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in FIELDS)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows)


def _prepared(raw: tuple, checks: list[Callable[[Any], bool] | None]) -> tuple:
    """Return one row's values as their model fields prepare them for PostgreSQL."""
    return tuple(
        value if check is not None and check(value) else f.get_db_prep_save(value, connection)
        for f, value, check in zip(FIELDS, raw, checks, strict=True)
    )


def _row(run: BacktestRun, trade: RoundTrip) -> tuple:
    """Return one trade's column values in FIELDS' order."""
    values = {
        "run_id": run.pk,
        "symbol": trade.symbol,
        "side": trade.side,
        "quantity": trade.quantity,
        "entry_ts": trade.entry_ts,
        "entry_price": trade.entry_price,
        "exit_ts": trade.exit_ts,
        "exit_price": trade.exit_price,
        "pnl": trade.pnl,
        "return_pct": trade.return_pct,
        "fees": trade.fees,
        "bars_held": trade.bars_held,
    }
    # A column the engine does not fill takes its default, as it would through bulk_create.
    return tuple(values[f.attname] if f.attname in values else f.get_default() for f in FIELDS)
