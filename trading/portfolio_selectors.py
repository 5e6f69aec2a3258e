"""Reads behind the API's portfolio, trades, performance and profit endpoints.

Everything is aggregated in the database (sums, per-period last snapshots, time buckets) so a
request costs a few indexed queries whatever the number of fills or snapshots stored. The
performance figures are the backtests' own (``backtesting.engine.metrics.summarize``) on the
account's stored equity snapshots, never a second copy of the maths.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, FloatField, Func, Max, Min, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from backtesting.engine.metrics import summarize
from backtesting.engine.result import round_trips
from marketdata.models import Symbol
from trading import portfolio_sql
from trading.engine.orders import Fill as EngineFill
from trading.engine.orders import Liquidity, OrderSide
from trading.models import Account, Fill, FillDay, PortfolioSnapshot, Position
from trading.portfolio_sql import ZERO, decimal_text, iso_utc
from trading.trade_tally import TRADE_KEYS, trade_metrics

YEAR_SECONDS = 365 * 24 * 3600
# Round trips are rebuilt from all of an account's fills; past this many the request is refused.
ROUND_TRIP_MAX_FILLS = 200_000
PERIODS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
EQUITY_CURVE_CACHE_SECONDS = 300


class TooManyFills(ValueError):
    """The account has more fills than a round-trip rebuild may read in one request."""


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column, as a float, on SQLite and PostgreSQL."""

    output_field = FloatField()

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL and the others
        return super().as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)")

    def as_sqlite(self, compiler, connection, **extra):
        template = "((julianday(%(expressions)s) - 2440587.5) * 86400.0)"
        return super().as_sql(compiler, connection, template=template)


class BucketOf(Func):
    """``floor((epoch(ts) - origin) / width)``: the time bucket of a row."""

    output_field = FloatField()

    def __init__(self, ts: str, origin: float, width: float) -> None:
        super().__init__(EpochSeconds(ts), origin=origin, width=width)

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # 1 ms of slack: SQLite's julianday arithmetic is exact to ~50 us, so a row stamped on a
        # bucket boundary must not fall into the bucket before.
        origin = float(self.extra["origin"]) - 0.001
        # CAST truncates on SQLite (rows are never before the origin, so it floors there).
        return f"CAST(({sql} - {origin!r}) / {float(self.extra['width'])!r} AS INTEGER)", params

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        origin = float(self.extra["origin"]) - 0.001
        # PostgreSQL's CAST rounds; FLOOR keeps a row in the bucket it started.
        return f"FLOOR(({sql} - {origin!r}) / {float(self.extra['width'])!r})", params


# --------------------------------------------------------------------------- portfolio


def portfolio_summaries(*, accounts: QuerySet[Account], now: datetime | None = None) -> list[dict]:
    """Return cash, equity, P&L, exposure and trading state of each account (by name).

    Equity is cash plus open positions at their last marks (the average entry when unmarked);
    daily P&L is measured from the last snapshot before 00:00 UTC (else the initial capital).
    """
    ids = list(accounts.order_by().values_list("pk", flat=True))
    return portfolio_sql.portfolio_rows(account_ids=ids, now=now or timezone.now())


def _mark(position: Position) -> Decimal:
    return position.mark_price if position.mark_price is not None else position.average_price


def positions_of(*, accounts: QuerySet[Account], include_closed: bool = False) -> QuerySet:
    """Return the positions of ``accounts`` (open ones unless ``include_closed``)."""
    rows = Position.objects.filter(account__in=accounts).select_related("account", "symbol")
    if not include_closed:
        rows = rows.exclude(quantity=0)
    return rows.order_by("account__name", "symbol__name")


# --------------------------------------------------------------------------- trades


def fills_of(
    *,
    accounts: QuerySet[Account],
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Fill]:
    """Return the fills of ``accounts`` (optionally one symbol, ``start <= ts < end``) as dicts
    of ``FILL_FIELDS`` (no model instances: a page of them is built in a fraction of the time)."""
    rows = Fill.objects.filter(account__in=accounts)
    if symbol:
        # By id, so the (account, symbol, ts) index serves the order (a join would not).
        symbol_id = Symbol.objects.filter(name=symbol).values_list("pk", flat=True).first()
        rows = rows.filter(symbol_id=symbol_id) if symbol_id else rows.none()
    if start is not None:
        rows = rows.filter(ts__gte=start)
    if end is not None:
        rows = rows.filter(ts__lt=end)
    return rows.values(*FILL_FIELDS)


FILL_FIELDS = (
    "id", "account_id", "order_id", "symbol__name", "side", "quantity", "price", "fee",
    "liquidity", "venue_trade_id", "ts",
)  # fmt: skip


def round_trips_of(
    *, account: Account, symbol: str | None = None, max_fills: int = ROUND_TRIP_MAX_FILLS
) -> list:
    """Return the account's round trips (newest entry first), rebuilt from all its fills.

    Open trades are marked at the position's last mark. Raises ``TooManyFills`` past
    ``max_fills`` (counted no further than that).
    """
    rows = Fill.objects.filter(account=account)
    days = FillDay.objects.filter(account=account)
    if symbol:
        rows = rows.filter(symbol__name=symbol)
        days = days.filter(symbol__name=symbol)
    if (days.aggregate(n=Sum("fills"))["n"] or 0) > max_fills:  # counted per day, not per fill
        raise TooManyFills(f"more than {max_fills} fills: ask for one symbol, or read /trades")
    fields = ("order_id", "symbol__name", "side", "quantity", "price", "fee", "liquidity", "ts")
    fills = [
        EngineFill(str(o), s, OrderSide(side), q, p, fee, Liquidity(liq), ts)
        for o, s, side, q, p, fee, liq, ts in rows.order_by("ts", "pk").values_list(*fields)
    ]
    marks = {
        name: mark
        for name, mark in Position.objects.filter(account=account).values_list(
            "symbol__name", "mark_price"
        )
        if mark is not None
    }
    trips = round_trips(fills, last_prices=marks)
    trips.reverse()
    return trips


# --------------------------------------------------------------------------- equity


def equity_span(*, account: Account) -> tuple[datetime | None, datetime | None, int]:
    """Return the first and last snapshot time of ``account`` and the number of snapshots."""
    span = PortfolioSnapshot.objects.filter(account=account).aggregate(
        first=Min("ts"), last=Max("ts"), n=Count("pk")
    )
    return span["first"], span["last"], span["n"]


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts: datetime
    equity: Decimal
    drawdown: float


class _Curve:
    """One downsampled curve: its points, and the same as the API writes them (made once)."""

    def __init__(self, rows: list[tuple]) -> None:
        self.points = [EquityPoint(ts, value, drawdown) for ts, value, drawdown in rows]
        self._rows: list[dict] | None = None
        self._json: bytes | None = None

    def api_rows(self) -> list[dict]:
        if self._rows is None:
            self._rows = [
                {"ts": iso_utc(p.ts), "equity": decimal_text(p.equity), "drawdown": p.drawdown}
                for p in self.points
            ]
        return self._rows

    def api_json(self) -> bytes:
        if self._json is None:  # as DRF's JSONRenderer writes it (compact, no NaN)
            text = json.dumps(self.api_rows(), separators=(",", ":"), allow_nan=False)
            self._json = text.encode()
        return self._json


class _RecentCache:
    """This process's recent answers (curves, performance) by a key naming what they read,
    each kept at most ``EQUITY_CURVE_CACHE_SECONDS``."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple, value) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + EQUITY_CURVE_CACHE_SECONDS, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CURVES = _RecentCache()
PERFORMANCE = _RecentCache(size=64)


def _curve(account: Account, points: int) -> _Curve | None:
    bounds = portfolio_sql.snapshot_bounds(account_id=account.pk)
    if bounds is None:
        return None
    (newest, stamp, equity), (oldest, first) = bounds
    key = (account.pk, points, newest, stamp, equity, oldest, first)
    curve = CURVES.get(key)
    if curve is None:
        # Wider than the span by more than BucketOf's slack: the last row is in bucket points-1.
        width = ((stamp - first).total_seconds() + 0.002) / points
        snapshots = PortfolioSnapshot.objects.filter(account=account)
        picked = _last_per_bucket(snapshots, first, width)
        curve = _Curve(list(picked.order_by("ts").values_list("ts", "equity", "drawdown")))
        CURVES.put(key, curve)
    return curve


def equity_curve(*, account: Account, points: int) -> list[EquityPoint]:
    """Return at most ``points`` snapshots: the last of each of ``points`` equal time buckets.

    Kept in this process under the newest and the oldest snapshot (id, time, equity), for at
    most ``EQUITY_CURVE_CACHE_SECONDS``: the engine only appends snapshots, so a new one (the
    only change) shows at once; a snapshot edited or deleted in between, neither the newest nor
    the oldest, shows within that time.
    """
    curve = _curve(account, points)
    return list(curve.points) if curve else []


def equity_curve_rows(*, account: Account, points: int) -> list[dict]:
    """Return ``equity_curve`` as the API writes it (``{ts, equity, drawdown}``); the dicts are
    shared with later requests: read them, never change them."""
    curve = _curve(account, points)
    return list(curve.api_rows()) if curve else []


def equity_curve_json(*, account: Account, points: int) -> bytes:
    """Return ``equity_curve_rows`` as the JSON array the API writes (made once per curve)."""
    curve = _curve(account, points)
    return curve.api_json() if curve else b"[]"


def _last_per_bucket(snapshots: QuerySet, origin: datetime, width: float) -> QuerySet:
    """Narrow ``snapshots`` to the last one of each ``width``-second bucket from ``origin``."""
    lasts = (
        snapshots.annotate(bucket=BucketOf("ts", origin.timestamp(), width))
        .values("bucket")
        .annotate(last=Max("ts"))
        .values("last")
    )
    return snapshots.filter(ts__in=lasts)


def performance_of(
    *, account: Account, bucket_seconds: int, annualise_from: timedelta | None = None
) -> dict:
    """Return the backtest metrics of the account's equity, sampled at ``bucket_seconds``.

    The equity is the last snapshot of each bucket (no look-ahead: a bucket's value is what was
    stored by its end); returns are annualised 24/7. With ``annualise_from``, a history shorter
    than that is not scaled to a year (minutes compounded to a year are noise): its figures are
    over its own span (``annualised`` False; see ``_performance``). Kept in this process under
    what it read (the newest and oldest snapshot, the initial capital) as the equity curve is:
    a new snapshot shows at once. The trade metrics are those the round-trip tally's background
    refresh stored (``trading.trade_tally``: exactly those of a rebuild from every fill), with
    their time in ``trades_as_of`` and ``trades_behind`` true while fills stored since are being
    tallied; before the first tally ends they are None and ``note`` says so.
    """
    key = (
        account.pk, bucket_seconds, account.initial_capital, annualise_from,
        portfolio_sql.snapshot_bounds(account_id=account.pk),
    )  # fmt: skip
    answer = PERFORMANCE.get(key)
    if answer is None:
        answer = _performance(account, bucket_seconds, annualise_from)
        PERFORMANCE.put(key, answer)
    answer = copy.deepcopy(answer)
    answer.update(note="", trades_as_of=None, trades_behind=False)
    if answer["metrics"]:
        tally = trade_metrics(account=account)
        answer.update(note=tally.note, trades_as_of=tally.as_of, trades_behind=tally.behind)
        trades = tally.figures or dict.fromkeys(TRADE_KEYS, math.nan)
        answer["metrics"].update(_finite(trades))
    return answer


def _performance(account: Account, bucket_seconds: int, annualise_from: timedelta | None) -> dict:
    """Return the performance figures of the equity (the trade metrics NaN: see above).

    Under ``annualise_from`` the span is the period: the same metrics with a year of one span
    (as many periods as returns), so ``annualised_return`` and ``cagr`` are the span's return,
    ``volatility``, ``sharpe`` and ``sortino`` scale by the square root of the returns counted
    (not of a year's buckets) and ``calmar`` is the span's return over the drawdown.
    """
    first, last, count = equity_span(account=account)
    base = {"account": account.pk, "snapshots": count, "start": first, "end": last}
    if first is None:
        return {**base, "points": 0, "periods_per_year": None, "metrics": {}, "baseline": {},
                "annualised": annualise_from is None}  # fmt: skip
    snapshots = _last_per_bucket(
        PortfolioSnapshot.objects.filter(account=account), first, float(bucket_seconds)
    )
    equity = [float(v) for v in snapshots.order_by("ts").values_list("equity", flat=True)]
    initial = float(account.initial_capital) or equity[0]
    span = (last - first).total_seconds()
    annualised = annualise_from is None or span >= annualise_from.total_seconds()
    if annualised:
        ppy = YEAR_SECONDS / bucket_seconds
        years = max(span, bucket_seconds) / YEAR_SECONDS
    else:  # one return a point (from the initial capital first): the span is the "year"
        ppy, years = float(len(equity)), 1.0
    metrics = summarize(equity, initial=initial, periods_per_year=ppy, years=years)
    cash = summarize([initial] * len(equity), initial=initial, periods_per_year=ppy, years=years)
    return {
        **base,
        "points": len(equity),
        "periods_per_year": ppy if annualised else None,
        "annualised": annualised,
        "metrics": _finite(metrics),
        "baseline": {
            "name": "cash (no trading): the account's initial capital held flat",
            "metrics": _finite(cash),
        },
    }


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """Return the metrics with NaN and infinities as None (JSON has neither)."""
    return {k: (v if isinstance(v, float | int) and math.isfinite(v) else None)
            for k, v in metrics.items()}  # fmt: skip


# --------------------------------------------------------------------------- profit


def profit_by_period(*, account: Account, period: str, count: int) -> list[dict]:
    """Return the last ``count`` periods' profit: equity at the period's end minus the previous.

    The first period is measured from the equity before it (or the initial capital).
    """
    trunc = PERIODS[period]
    snapshots = PortfolioSnapshot.objects.filter(account=account)
    ends = (
        snapshots.annotate(period=trunc("ts"))
        .values("period")
        .annotate(last=Max("ts"))
        .order_by("-period")[: count + 1]
    )
    ends = list(ends)
    equity_at = dict(snapshots.filter(ts__in=[e["last"] for e in ends]).values_list("ts", "equity"))
    fills = _fills_per_period(account, period, [e["period"] for e in ends])
    rows = []
    for i, end in enumerate(ends[:count]):
        previous = ends[i + 1] if i + 1 < len(ends) else None
        before = equity_at[previous["last"]] if previous else account.initial_capital
        closing = equity_at[end["last"]]
        rows.append(
            {
                "period": end["period"],
                "starting_equity": before,
                "ending_equity": closing,
                "profit": closing - before,
                "profit_ratio": float((closing - before) / before) if before else None,
                "fills": fills.get(end["period"], (0, ZERO))[0],
                "fees": fills.get(end["period"], (0, ZERO))[1],
            }
        )
    return rows


_PERIOD_START = {
    "day": lambda d: d,
    "week": lambda d: d - timedelta(days=d.weekday()),  # Monday, as TruncWeek
    "month": lambda d: d.replace(day=1),
}


def _fills_per_period(account: Account, period: str, periods: list) -> dict:
    """Return {period start: (fills, fees)} from ``min(periods)`` on, from the per-day rollup."""
    if not periods:
        return {}
    start = min(periods).astimezone(UTC).date()
    out: dict[datetime, tuple[int, Decimal]] = {}
    days = FillDay.objects.filter(account=account, day__gte=start)
    for day, n, fees in days.values_list("day", "fills", "fees"):
        first = _PERIOD_START[period](day)
        key = datetime(first.year, first.month, first.day, tzinfo=UTC)
        count, total = out.get(key, (0, ZERO))
        out[key] = (count + n, total + fees)
    return out


def profit_by_symbol(*, account: Account, fill_stats: bool = True) -> list[dict]:
    """Return P&L per symbol (realised and unrealised gross of fees; net after them), with fill
    counts and traded value (an aggregate over every fill; None without ``fill_stats``)."""
    traded = None
    if fill_stats:
        traded = {  # from the per-day rollup the database keeps with the fills
            r["symbol__name"]: r
            for r in FillDay.objects.filter(account=account)
            .values("symbol__name")
            .annotate(n=Sum("fills"), notional=Sum("notional"))
        }
    rows = []
    for p in Position.objects.filter(account=account).select_related("symbol"):
        stats = traded.get(p.symbol.name, {}) if traded is not None else {"n": None}
        rows.append(
            {
                "symbol": p.symbol.name,
                "quantity": p.quantity,
                "realized_pnl": p.realized_pnl,
                "unrealized_pnl": p.unrealized_pnl,
                "fees": p.fees,
                "net_pnl": p.realized_pnl + p.unrealized_pnl - p.fees,
                "fills": stats.get("n", 0),
                "traded_value": (stats.get("notional") or ZERO) if traded is not None else None,
            }
        )
    return sorted(rows, key=lambda r: r["symbol"])
