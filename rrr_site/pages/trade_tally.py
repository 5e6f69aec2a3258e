"""The performance page's trade metrics at any number of fills: round trips tallied once per web
process and extended by each load with the fills stored since.

A from-scratch rebuild of an account's round trips costs ~13 s of CPU at 1,000,000 fills, far
too long for a page, so this process keeps, per account and symbol, the closed trips' P&L and
returns up to the last moment the symbol was flat, plus the fills since then (the open "tail").
A load reads only the fills after the last one tallied (one index range scan), rebuilds trips
over tail + new fills with the engine's own ``round_trips`` (no second copy of the P&L maths)
and moves the tail forward to the new last flat point. The figures are therefore exact at every
load. The first tally of a large account runs in a background thread (the page says it is being
computed); a fill stored with a time before the last tallied one (a late insert) starts the
tally again.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import Q

from backtesting.engine.metrics import summarize
from backtesting.engine.result import round_trips
from trading.engine.orders import Fill as EngineFill
from trading.engine.orders import Liquidity, OrderSide
from trading.models import Account, Fill

logger = logging.getLogger(__name__)
INLINE_FILLS = 20_000  # fills a page load tallies itself; past this a thread does (first tally)
CHUNK = 50_000
LOCK_WAIT_SECONDS = 5.0  # another load of the same account extending the tally meanwhile
BUILDING = "trade metrics: being tallied over the account's fills (first view since start-up)"
TRADE_KEYS = ("trades", "win_rate", "profit_factor", "expectancy", "average_win", "average_loss",
              "best_trade", "worst_trade", "average_trade", "sqn", "kelly")  # fmt: skip
_FIELDS = ("pk", "order_id", "symbol__name", "side", "quantity", "price", "fee", "liquidity", "ts")


@dataclass
class _Symbol:
    tail: list[EngineFill] = field(default_factory=list)  # fills since the symbol was last flat
    pnls: array = field(default_factory=lambda: array("d"))  # closed trips before the tail
    rets: array = field(default_factory=lambda: array("d"))


@dataclass
class _Tally:
    last: tuple[datetime, int] | None = None  # the last fill tallied (ts, pk)
    symbols: dict[str, _Symbol] = field(default_factory=dict)
    high_pk: int = 0  # the highest fill id tallied
    building: bool = False
    seconds: float = 0.0  # how long the first tally took
    figures: dict | None = None  # the metrics as of ``last`` (None once more fills are read)
    lock: threading.Lock = field(default_factory=threading.Lock)


_TALLIES: dict[int, _Tally] = {}
_GUARD = threading.Lock()


def _new_fills(account_id: int, last: tuple[datetime, int] | None, limit: int) -> list[tuple]:
    rows = Fill.objects.filter(account_id=account_id)
    if last is not None:
        ts, pk = last
        rows = rows.filter(Q(ts__gt=ts) | Q(ts=ts, pk__gt=pk))
    return list(rows.order_by("ts", "pk").values_list(*_FIELDS)[:limit])


def _stale(tally: _Tally, account_id: int) -> bool:
    """Return whether the tally no longer describes the stored fills: its last fill is gone (a
    database restored or reset) or a fill not tallied yet is stamped before it (a late insert
    the forward read would miss)."""
    if tally.last is None:
        return False
    ts, pk = tally.last
    found = list(  # one query: the last fill itself, and at most one late one
        Fill.objects.filter(account_id=account_id)
        .filter(Q(pk=pk, ts=ts) | Q(pk__gt=tally.high_pk, ts__lt=ts))
        .order_by("pk")
        .values_list("pk", flat=True)[:2]
    )
    return found != [pk]


def _extend(state: _Symbol, fills: list[EngineFill]) -> None:
    """Tally the trips closed by ``fills`` up to the symbol's last flat point; keep the rest."""
    work = state.tail + fills
    position, cut = 0, 0
    for i, fill in enumerate(work):
        position += fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
        if position == 0:
            cut = i + 1
    if cut:
        for trip in round_trips(work[:cut]):
            state.pnls.append(float(trip.pnl))
            state.rets.append(trip.return_pct)
    state.tail = work[cut:]


def _consume(tally: _Tally, account_id: int, limit: int) -> int:
    """Tally up to ``limit`` new fills (in chunks); return how many were read."""
    read = 0
    while read < limit:
        rows = _new_fills(account_id, tally.last, min(CHUNK, limit - read))
        if not rows:
            break
        by_symbol: dict[str, list[EngineFill]] = {}
        for _pk, order, symbol, side, qty, price, fee, liq, ts in rows:
            by_symbol.setdefault(symbol, []).append(
                EngineFill(str(order), symbol, OrderSide(side), qty, price, fee, Liquidity(liq), ts)
            )
        for symbol, fills in by_symbol.items():
            _extend(tally.symbols.setdefault(symbol, _Symbol()), fills)
        tally.last = (rows[-1][-1], rows[-1][0])
        tally.high_pk = max(tally.high_pk, max(row[0] for row in rows))
        read += len(rows)
    return read


def _build(tally: _Tally, account_id: int) -> None:
    started = time.perf_counter()
    try:
        _consume(tally, account_id, limit=10**12)
    except Exception:  # the page says the metrics are missing; the log says why
        logger.exception("trade tally of account %s failed", account_id)
        tally.last, tally.symbols, tally.high_pk = None, {}, 0
    finally:
        tally.seconds = time.perf_counter() - started
        tally.building = False
        tally.lock.release()
        connection.close()  # this thread's own connection


def trade_metrics(*, account: Account, inline: int = INLINE_FILLS) -> tuple[dict | None, str]:
    """Return the trade metrics of the account's closed round trips (``summarize``'s trade
    figures) and a note; (None, why) while a first tally of more than ``inline`` fills runs."""
    with _GUARD:
        tally = _TALLIES.setdefault(account.pk, _Tally())
    # A thread building the first tally holds the lock for seconds: say so rather than wait.
    if tally.building or not tally.lock.acquire(timeout=LOCK_WAIT_SECONDS):
        return None, BUILDING
    try:
        if _stale(tally, account.pk):
            tally.last, tally.symbols, tally.high_pk, tally.figures = None, {}, 0, None
        read = _consume(tally, account.pk, limit=inline)
        if read:
            tally.figures = None
        if read >= inline and _new_fills(account.pk, tally.last, 1):  # more: tally in a thread
            tally.building = True
            threading.Thread(target=_build, args=(tally, account.pk), daemon=True).start()
            return None, BUILDING
        if tally.figures is None:
            tally.figures = _figures(tally)
        return dict(tally.figures), ""
    finally:
        if not tally.building:
            tally.lock.release()


def _figures(tally: _Tally) -> dict:
    """Return ``summarize``'s trade figures over every closed trip of the tally."""
    pnls, rets = array("d"), array("d")
    for state in tally.symbols.values():
        pnls.extend(state.pnls)
        rets.extend(state.rets)
        for trip in round_trips(state.tail):  # closed since the symbol's last flat point
            if not trip.is_open:
                pnls.append(float(trip.pnl))
                rets.append(trip.return_pct)
    figures = summarize([1.0], initial=1.0, periods_per_year=1.0, trade_pnls=pnls,
                        trade_returns=rets)  # fmt: skip
    return {k: figures[k] for k in TRADE_KEYS}
