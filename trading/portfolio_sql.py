"""The API's busiest reads written in SQL: portfolio, a page of fills, the equity curve's span.

``trading.portfolio_selectors`` builds the same answers with the ORM; these produce them with
one statement each, through ``rrr_site.api.sql`` (the ORM's own value conversion), because at
hundreds of requests per second the ORM's query building cost more CPU than the database's
work. On PostgreSQL money and times are written as the API's text by the database
(``numeric(28,10)::text`` is the DecimalField's 10-place string; ``to_char`` the ISO UTC time);
on SQLite Python writes them, from the ORM's converted values. Tests hold both against the
documented serializers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models import Model

from marketdata.models import Symbol
from risk.models import TradingState
from rrr_site.api import sql
from trading.models import Account, Fill, PortfolioSnapshot, Position

ZERO = Decimal(0)
TEN_PLACES = Decimal("1e-10")
Text = tuple[str, Callable[[Any], Any] | None]  # (SQL expression, Python step or None)


def decimal_text(value: Decimal) -> str:
    """Write a money column as DRF's DecimalField does: fixed point at its 10 places."""
    return format(value.quantize(TEN_PLACES), "f")


def iso_utc(value: datetime) -> str:
    """Write a datetime as DRF's DateTimeField does in UTC (``Z``, microseconds when present)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _pg() -> bool:
    return connection.vendor == "postgresql"


def money_text(model: type[Model], name: str) -> Text:
    """Return SQL reading a 10-place decimal column as the API's text, and the Python step."""
    field = model._meta.get_field(name)
    assert field.decimal_places == 10, "numeric(_,10)::text is the 10-place string"
    if _pg():
        return f"CAST({sql.column(model, name)} AS TEXT)", None
    convert = sql.converter(field)
    return sql.column(model, name), lambda v: None if v is None else decimal_text(convert(v))


def time_text(model: type[Model], name: str) -> Text:
    """Return SQL reading a datetime column as ISO-8601 UTC text (``Z``; microseconds when
    present, as DRF writes it), and the Python step."""
    col = sql.column(model, name)
    if _pg():
        utc = f"({col} AT TIME ZONE 'UTC')"
        micro = f"mod(CAST(date_part('microseconds', {col}) AS BIGINT), 1000000)"
        return (
            f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
            f"CASE WHEN {micro} = 0 THEN '' ELSE to_char({utc}, '.US') END || 'Z'",
            None,
        )
    convert = sql.converter(model._meta.get_field(name))
    return col, lambda v: None if v is None else iso_utc(convert(v))


# --------------------------------------------------------------------------- portfolio


def portfolio_rows(*, account_ids: list[int] | None, now: datetime) -> list[dict]:
    """Return ``portfolio_selectors.portfolio_summaries`` of the accounts ``account_ids`` (None:
    every account), ordered by name, from one statement."""
    if account_ids is not None and not account_ids:
        return []
    statement, steps = _portfolio_statement(
        connection.vendor, None if account_ids is None else len(account_ids)
    )
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    params = [connection.ops.adapt_datetimefield_value(midnight), *(account_ids or [])]
    summaries: dict[int, dict] = {}
    for row in sql.fetch(statement, params, steps):
        pk, name, mode, currency, cash, initial, state, opening_equity, *position = row
        summary = summaries.get(pk)
        if summary is None:
            summary = summaries[pk] = _summary(pk, name, mode, currency, cash, initial, state, now)
            summary["_opening"] = opening_equity if opening_equity is not None else initial
        if position[0] is not None:
            _add_position(summary, *position)
    return [_finish(summary) for summary in summaries.values()]


@lru_cache(maxsize=16)
def _portfolio_statement(vendor: str, accounts: int | None) -> tuple[str, tuple]:
    """Return the SQL of accounts with trading state, opening equity and positions (a row per
    position, one with NULLs without any), and the value conversion of its columns."""
    a, p, s = sql.table(Account), sql.table(Position), sql.table(PortfolioSnapshot)
    acc = lambda n: sql.column(Account, n)  # noqa: E731
    pos = lambda n: sql.column(Position, n)  # noqa: E731
    snap = lambda n: sql.column(PortfolioSnapshot, n)  # noqa: E731
    opening = (
        f"SELECT {snap('equity')} FROM {s} WHERE {snap('account')} = {acc('id')} "
        f"AND {snap('ts')} < %s ORDER BY {snap('ts')} DESC LIMIT 1"
    )
    where = "" if accounts is None else f"WHERE {acc('id')} IN ({', '.join(['%s'] * accounts)})"
    statement = (
        f"SELECT {acc('id')}, {acc('name')}, {acc('mode')}, {acc('base_currency')}, "
        f"{acc('cash')}, {acc('initial_capital')}, {sql.column(TradingState, 'state')}, "
        f"({opening}), {pos('quantity')}, {pos('mark_price')}, {pos('average_price')}, "
        f"{pos('realized_pnl')}, {pos('unrealized_pnl')} "
        f"FROM {a} LEFT JOIN {sql.table(TradingState)} ON "
        f"{sql.column(TradingState, 'account')} = {acc('id')} "
        f"LEFT JOIN {p} ON {pos('account')} = {acc('id')} {where} "
        f"ORDER BY {acc('name')}, {acc('id')}"
    )
    money = sql.converter(Account._meta.get_field("cash"))
    return statement, (None,) * 4 + (money, money, None, money) + (money,) * 5


def _summary(pk, name, mode, currency, cash, initial, state, now) -> dict:
    return {
        "account": pk, "name": name, "mode": mode, "base_currency": currency, "cash": cash,
        "equity": cash, "positions_value": ZERO, "gross_exposure": ZERO, "net_exposure": ZERO,
        "realized_pnl": ZERO, "unrealized_pnl": ZERO, "daily_pnl": ZERO, "total_pnl": ZERO,
        "initial_capital": initial, "open_positions": 0, "trading_state": state or "active",
        "as_of": now,
    }  # fmt: skip


def _add_position(summary: dict, quantity, mark, average, realized, unrealized) -> None:
    summary["realized_pnl"] += realized  # closed positions too: their P&L was realised
    if quantity == 0:
        return
    value = quantity * (mark if mark is not None else average)
    summary["positions_value"] += value
    summary["gross_exposure"] += abs(value)
    summary["unrealized_pnl"] += unrealized
    summary["open_positions"] += 1


def _finish(summary: dict) -> dict:
    opening = summary.pop("_opening")
    summary["net_exposure"] = summary["positions_value"]
    summary["equity"] = summary["cash"] + summary["positions_value"]
    summary["daily_pnl"] = summary["equity"] - opening
    summary["total_pnl"] = summary["equity"] - summary["initial_capital"]
    return summary


# --------------------------------------------------------------------------- fills

FILL_KEYS = (
    "id", "account", "order", "symbol", "side", "quantity", "price", "fee", "liquidity",
    "venue_trade_id", "ts",
)  # fmt: skip


def fill_page(
    *,
    account_ids: list[int] | None,
    limit: int,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> tuple[list[dict], tuple[datetime, int] | None]:
    """Return up to ``limit`` fills newest first (by ts, then id) as the API's dicts, after the
    row ``after`` (ts, id); and the (ts, id) to resume from when more remain, else None."""
    if account_ids is not None and not account_ids:
        return [], None
    adapt = connection.ops.adapt_datetimefield_value
    params: list = list(account_ids or [])
    if symbol:
        params.append(symbol)
    params += [adapt(t) for t in (start, end) if t is not None]
    if after is not None:
        params += [adapt(after[0]), adapt(after[0]), after[1]]
    statement, steps = _fill_statement(
        connection.vendor,
        None if account_ids is None else len(account_ids),
        bool(symbol), start is not None, end is not None, after is not None,
    )  # fmt: skip
    rows = sql.fetch(statement, [*params, limit + 1], steps)
    page = [dict(zip(FILL_KEYS, row, strict=True)) for row in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    return page, (datetime.fromisoformat(page[-1]["ts"]), page[-1]["id"])


@lru_cache(maxsize=64)
def _fill_statement(
    vendor: str, accounts: int | None, symbol: bool, start: bool, end: bool, after: bool
) -> tuple[str, tuple]:
    """Return the SQL of a fills page (the API's columns, ts written last) and its steps."""
    f = lambda n: sql.column(Fill, n)  # noqa: E731
    where = []
    if accounts is not None:
        where.append(f"{f('account')} IN ({', '.join(['%s'] * accounts)})")
    if symbol:
        where.append(
            f"{f('symbol')} = (SELECT s.{connection.ops.quote_name('id')} FROM "
            f"{sql.table(Symbol)} s WHERE s.{connection.ops.quote_name('name')} = %s)"
        )
    if start:
        where.append(f"{f('ts')} >= %s")
    if end:
        where.append(f"{f('ts')} < %s")
    if after:
        where.append(f"({f('ts')} < %s OR ({f('ts')} = %s AND {f('id')} < %s))")
    texts = [money_text(Fill, n) for n in ("quantity", "price", "fee")]
    ts_sql, ts_step = time_text(Fill, "ts")
    statement = (
        f"SELECT {f('id')}, {f('account')}, {f('order')}, {sql.column(Symbol, 'name')}, "
        f"{f('side')}, {', '.join(t[0] for t in texts)}, {f('liquidity')}, "
        f"{f('venue_trade_id')}, {ts_sql} FROM {sql.table(Fill)} "
        f"JOIN {sql.table(Symbol)} ON {sql.column(Symbol, 'id')} = {f('symbol')} "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY {f('ts')} DESC, {f('id')} DESC LIMIT %s"
    )
    return statement, (None,) * 5 + tuple(t[1] for t in texts) + (None, None, ts_step)


# --------------------------------------------------------------------------- equity curve


def snapshot_bounds(*, account_id: int) -> tuple | None:
    """Return ((id, ts, equity) of the newest snapshot, (id, ts) of the oldest) of the account,
    or None without snapshots: two index probes in one statement."""
    statement, convert = _bounds_statement(connection.vendor)
    rows = {row[0]: row[1:] for row in sql.fetch(statement, [account_id, account_id], convert)}
    if 1 not in rows:
        return None
    return rows[1], rows[0][:2]


@lru_cache(maxsize=4)
def _bounds_statement(vendor: str) -> tuple[str, tuple]:
    s = lambda n: sql.column(PortfolioSnapshot, n)  # noqa: E731
    one = (
        f"SELECT * FROM (SELECT {{k}} AS k, {s('id')}, {s('ts')}, {s('equity')} "
        f"FROM {sql.table(PortfolioSnapshot)} WHERE {s('account')} = %s "
        f"ORDER BY {s('ts')} {{order}} LIMIT 1) AS {{alias}}"
    )
    statement = (
        f"{one.format(k=1, order='DESC', alias='newest')} UNION ALL "
        f"{one.format(k=0, order='ASC', alias='oldest')}"
    )
    return statement, (None, None, *sql.converters(PortfolioSnapshot, ["ts", "equity"]))
