"""Sparse replay: which bars a backtest must visit when strategies describe ``on_bar`` as a table.

When every strategy of a run has a decision table (``Strategy.decision_table``), only bars are
replayed, no pre-trade hook looks at the account on every bar, and fills happen at the next open
or at the close, a bar can change nothing but the marks unless

* a strategy's table acts on it for the direction currently held (``Pair.next_after``), or
* an order is open in its symbol (the venue matches it on the symbol's bars), or
* it is the first bar of a UTC day (the portfolio starts the day's P&L there).

``BacktestRunner`` then visits exactly those bars, in order, through the same ``StrategyRunner``,
OMS, venue and portfolio as the full replay (``StrategyRunner.on_bar_decided``), re-marking the
positions at their last closes before each visit so sizing sees the same equity. The equity after
every bar is computed afterwards from the cash and positions recorded after each visit
(``equity_by_row``). Results equal the full replay's (tested on every built-in strategy).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from operator import methodcaller
from typing import Any

import numpy as np

from backtesting.engine.feed import bar_builder
from backtesting.engine.result import EPOCH, to_datetime
from marketdata.engine.events import Timeframe
from trading.engine.money import ZERO, to_decimal
from trading.engine.orders import Fill, Order
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.series import IndicatorCache
from trading.engine.strategy import Strategy

ProgressCallback = Callable[[int, int], None]

NEVER = 1 << 62  # a row index past any data
_DAY_NS = 86_400 * 1_000_000_000


class Pair:
    """One strategy on one symbol: its decision table and the rows where it acts."""

    __slots__ = ("_acting", "_runs", "close", "rows", "slot", "symbol", "table")

    def __init__(
        self,
        slot: int,
        symbol: str,
        table: np.ndarray,
        rows: np.ndarray | None,
        close: np.ndarray,
    ) -> None:
        self.slot = slot  # the strategy's index in the runner
        self.symbol = symbol
        self.table = table  # (3, rows of the symbol): row h + 1 applies while holding sign h
        self.rows = rows  # the symbol's global rows (None: one symbol, global rows are its own)
        self.close = close  # the symbol's closes
        # Where the table acts while short / flat / long, as runs of consecutive rows of the
        # symbol: (first global rows, last global rows). A state strategy acts on about half
        # the rows for a side, in a few runs a crossing: as a list of rows (for bisect) that was
        # half a million Python ints per side at a million bars.
        with np.errstate(invalid="ignore"):
            self._runs = tuple(_runs(_acts(table, h), rows) for h in (-1, 0, 1))
        # The acting rows and their closes, per side, built on first use (``next_affordable``).
        self._acting: list[tuple[np.ndarray, np.ndarray] | None] = [None, None, None]

    def next_after(self, row: int, held: int) -> int:
        """Return the first global row after ``row`` where the table acts while holding ``held``."""
        firsts, lasts = self._runs[held + 1]
        k = bisect_right(lasts, row)  # the first run that still acts after ``row``
        if k == len(lasts):
            return NEVER
        first = firsts[k]
        if first > row:
            return first
        rows = self.rows  # inside the run: the symbol's next row
        if rows is None:
            return row + 1
        return rows.item(int(np.searchsorted(rows, row, side="right")))

    def acting(self, held: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the global rows where the table acts while holding ``held``, and their
        closes."""
        found = self._acting[held + 1]
        if found is None:
            with np.errstate(invalid="ignore"):
                local = np.flatnonzero(_acts(self.table, held))
            rows = local if self.rows is None else self.rows[local]
            found = self._acting[held + 1] = (rows, self.close[local])
        return found

    def next_affordable(self, row: int, held: int, bound: float) -> int:
        """Return the first acting row after ``row`` closing at or below ``bound``."""
        rows, closes = self.acting(held)
        k = int(np.searchsorted(rows, row, side="right"))
        limit = bound * (1 + 1e-9)  # a margin for rounding: an extra visit is always safe
        step = 256
        while k < rows.size:
            hits = np.flatnonzero(closes[k : k + step] <= limit)
            if hits.size:
                return int(rows[k + int(hits[0])])
            k += step
            step *= 4
        return NEVER


def _acts(table: np.ndarray, held: int) -> np.ndarray:
    """Return where ``table`` acts while holding ``held``: a direction, not the one held."""
    wanted = table[held + 1]
    return ~np.isnan(wanted) & (wanted != held)


def _runs(mask: np.ndarray, rows: np.ndarray | None) -> tuple[list[int], list[int]]:
    """Return the first and the last row of each run of True in ``mask`` (as global rows)."""
    edges = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    firsts, lasts = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    if rows is not None:
        firsts, lasts = rows[firsts], rows[lasts]
    return firsts.tolist(), lasts.tolist()


@dataclass(frozen=True, slots=True)
class SparsePlan:
    """Everything the sparse replay precomputes from the bars and the strategies."""

    pairs: tuple[Pair, ...]
    by_symbol: dict[str, tuple[int, ...]]  # symbol -> indices into ``pairs``
    rows: dict[str, np.ndarray]  # symbol -> its global rows, ascending
    local: np.ndarray  # global row -> index within its symbol's rows
    day_starts: list[int]  # global rows that open a new UTC day (after the first day)
    symbols: np.ndarray  # the symbol of each global row (objects)

    def next_row_of(self, symbol: str, row: int) -> int:
        """Return the symbol's first row after ``row``."""
        rows = self.rows[symbol]
        k = self.local.item(row) + 1 if row >= 0 else 0
        return rows.item(k) if k < rows.size else NEVER

    def last_row_before(self, symbol: str, row: int) -> int:
        """Return the symbol's last row before ``row``, or -1."""
        rows = self.rows[symbol]
        if row < self.local.size and self.symbol_at(row) == symbol:
            k = self.local.item(row) - 1  # the common case: no search
        else:
            k = int(np.searchsorted(rows, row)) - 1
        return rows.item(k) if k >= 0 else -1

    def symbol_at(self, row: int) -> str:
        """Return the symbol of global row ``row``."""
        return self.symbols[row]

    def next_day_start(self, row: int) -> int:
        """Return the first row after ``row`` that opens a UTC day."""
        starts = self.day_starts
        k = bisect_right(starts, row)
        return starts[k] if k < len(starts) else NEVER


def build_plan(
    ts: np.ndarray,
    symbol: np.ndarray,
    close: np.ndarray,
    strategies: Sequence[tuple[Strategy, tuple[str, ...] | None]],
    *,
    names: Sequence[str] | None = None,
    columns: dict[str, np.ndarray] | None = None,
) -> SparsePlan | None:
    """Return the plan, or None if a strategy has no decision table (replay every bar).

    ``names`` are the distinct symbols, sorted, when the caller knows them; ``columns`` the
    other bar columns (ts, open, high, low, volume) signal-style strategies read.
    """
    if not all(type(s).has_decision_table() for s, _ in strategies):
        return None
    n = ts.size
    if names is None:
        names = sorted(set(symbol.tolist()))
    single = len(names) == 1
    if single:
        local = np.arange(n)
        rows = {names[0]: local}
        # One symbol: its rows are all rows, so its columns are the arrays themselves (no copy).
        caches = {names[0]: IndicatorCache(close, dict(columns or {}))}
    else:
        rows = {s: np.flatnonzero(symbol == s) for s in names}
        local = np.empty(n, dtype=np.int64)
        for r in rows.values():
            local[r] = np.arange(r.size)
        caches = {
            s: IndicatorCache(close[r], {k: v[r] for k, v in (columns or {}).items()})
            for s, r in rows.items()
        }
    pairs: list[Pair] = []
    for slot, (strategy, wanted) in enumerate(strategies):
        for sym, r in rows.items():
            if wanted is not None and sym not in wanted:
                continue
            table = strategy.decision_table(caches[sym])
            if table is None or table.shape != (3, r.size):
                return None
            pairs.append(Pair(slot, sym, table, None if single else r, caches[sym].close))
    by_symbol = {sym: tuple(k for k, p in enumerate(pairs) if p.symbol == sym) for sym in rows}
    day = ts // _DAY_NS
    day_starts = (np.flatnonzero(np.diff(day) > 0) + 1).tolist()
    return SparsePlan(tuple(pairs), by_symbol, rows, local, day_starts, symbol)


@dataclass(slots=True)
class StateLog:
    """Cash and positions after each visit that changed them (exact), from the start."""

    rows: list[int]
    cash: list[Decimal]
    positions: list[dict[str, Decimal]]
    fills: int = field(default=0)  # fills seen when the last state was recorded

    @classmethod
    def starting(cls, cash: Decimal) -> StateLog:
        """Return a log holding the initial state (before row 0)."""
        return cls([-1], [cash], [{}])

    def record(self, row: int, cash: Decimal, positions: dict[str, Decimal]) -> None:
        """Record the state after ``row``."""
        self.rows.append(row)
        self.cash.append(cash)
        self.positions.append(positions)

    def counts(self, n: int) -> np.ndarray:
        """Return, for each state, how many of ``n`` rows it is in force after (it holds from
        the row it was recorded after until the next state's row)."""
        # Rows are recorded once each, in increasing order, after the initial -1.
        rows = np.asarray(self.rows, dtype=np.int64)
        ends = np.append(rows[1:], n)
        rows[0] = 0
        return ends - rows

    def holding(self) -> np.ndarray:
        """Return, per state, whether a position is open."""
        positions = self.positions  # (maps in C: no Python frame per state)
        return np.fromiter(map(any, map(dict.values, positions)), bool, len(positions))

    def state_after(self, row: int) -> int:
        """Return the index of the state in force after ``row``."""
        return bisect_right(self.rows, row) - 1


def last_closes(
    symbol: np.ndarray, close: np.ndarray, sym: str, *, only: bool = False
) -> np.ndarray:
    """Return each row's latest close of ``sym`` at or before it (NaN before its first bar).

    ``only``: every row is ``sym``'s (no need to look).
    """
    if only:
        return close
    mine = symbol == sym
    if mine.all():
        return close
    at = np.where(mine, np.arange(close.size), -1)
    np.maximum.accumulate(at, out=at)
    return np.where(at >= 0, close[np.maximum(at, 0)], np.nan)


def equity_by_row(
    log: StateLog, symbol: np.ndarray, close: np.ndarray, *, single: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Return the equity after every row (float), the rows per state (``StateLog.counts``) and
    the marks used."""
    counts = log.counts(close.size)
    equity = np.repeat(np.fromiter(map(float, log.cash), float, len(log.cash)), counts)
    # The symbols ever held: of those logged at all (a set union in C), the ones with a
    # quantity other than zero in some state.
    positions = log.positions
    logged = set().union(*positions)
    held = sorted(s for s in logged if any(map(methodcaller("get", s, ZERO), positions)))
    marks = {}
    for sym in held:
        # (a flat state's zero without ``float(Decimal)``, which goes through a string)
        quantities = [float(q) if (q := p.get(sym)) else 0.0 for p in log.positions]
        qty = np.repeat(np.array(quantities), counts)
        mark = marks[sym] = last_closes(symbol, close, sym, only=single)
        if np.isfinite(mark).all():
            qty *= mark  # a zero quantity adds 0.0: what the masked form below gives
        else:
            qty = np.where(qty != 0, qty * np.nan_to_num(mark), 0.0)
        equity += qty
    return equity, counts, marks


def _side(positions: Mapping[str, Any], symbol: str) -> int:
    """Return the side held in ``symbol``: 1 long, -1 short, 0 flat (``SparseReplay._held``)."""
    pos = positions.get(symbol)
    return 0 if pos is None else (pos.quantity > ZERO) - (pos.quantity < ZERO)


def _open_in(orders: Mapping[str, Order], symbol: str) -> bool:
    """Return True if one of ``orders`` is in ``symbol`` (``OrderManager.has_open_orders``)."""
    for order in orders.values():
        if order.symbol == symbol:
            return True
    return False


def _column(table: np.ndarray, i: int) -> tuple[float, float, float]:
    """Return column ``i`` of a decision table as plain floats (cheaper to read than a view)."""
    return (table.item(0, i), table.item(1, i), table.item(2, i))


class SparseReplay:
    """The sparse replay's loop over one ``BarData`` (see the module docstring)."""

    def __init__(
        self,
        plan: SparsePlan,
        data: Any,
        runner: StrategyRunner,
        open_orders: Mapping[str, Order],
        portfolio: Portfolio,
        fills: list[Fill],
        *,
        account: str,
        remark_close: bool,
        fill_rows: bool = False,
    ) -> None:
        self.plan = plan
        self.data = data
        self.runner = runner
        # The account's open orders by id: the OMS's own mapping, changed in place (asked
        # twice a visit whether anything is open in the bar's symbol: no call for it).
        self.open_orders = open_orders
        self.portfolio = portfolio
        self.fills = fills
        self.account = account
        self.remark_close = remark_close  # close fills: equity after a bar is at its close
        # ``fill_rows``: each fill's row, kept for one symbol (the row is then the fill's bar
        # among its symbol's: the result needs no search by time). Only for a caller whose
        # fills all happen in the bar being visited (next-open fills stamped at its start).
        self.fill_rows: list[int] | None = [] if fill_rows and len(plan.rows) == 1 else None
        self.symbols, self.stamps, self.closes = data.symbol, data.ts, data.close
        self.opens, self.highs, self.lows = data.open, data.high, data.low
        self.volumes = data.volume
        self.timeframe = data.timeframe
        self.single = len(plan.rows) == 1  # global row == row within the symbol
        self.only = next(iter(plan.rows)) if self.single else None  # its symbol
        self.log = StateLog.starting(portfolio.cash)
        self.marked: dict[str, int] = {}  # symbol -> the row its position is marked at
        self.due = [p.next_after(-1, 0) for p in plan.pairs]  # next row each pair acts on
        self.hinted: set[int] = set()  # pairs scheduled by an affordability bound
        self.open_next: dict[str, int] = {}  # symbol -> next row, while orders are open in it
        self.day_next = plan.next_day_start(-1)
        self.in_market: np.ndarray | None = None  # per row, set by ``finish``
        self.visits = 0  # bars visited, set by ``run``
        self._bar = bar_builder()  # ``Bar(...)``, built faster
        # The last visit's stamp (ns) and datetime: the next one is reached by adding a step
        # (timedelta's constructor costs several additions), steps kept by size.
        self._stamp, self._when = 0, EPOCH
        self._steps: dict[int, timedelta] = {}
        # The bar being visited, for ``_shown``: its symbol, pairs and row in the symbol.
        self._at: tuple[str, Sequence[int], int] = ("", (), 0)

    def run(self, progress: ProgressCallback | None, every: int) -> None:
        """Visit every bar where something can happen, in order."""
        n, reported, visits = self.stamps.size, 0, 0
        if self.single and len(self.plan.pairs) == 1:
            reported, visits = self._run_one(progress, every)
        due, open_next = self.due, self.open_next
        while True:
            row = min(due, default=NEVER)
            if self.day_next < row:
                row = self.day_next
            if open_next:
                row = min(row, min(open_next.values()))
            if row >= n:
                break
            self.visit(row)
            visits += 1
            if progress is not None and row + 1 - reported >= every:
                reported = row + 1 - (row + 1) % every
                progress(reported, n)
        self.visits = visits
        self.catch_up(n, flat_too=True)  # the last marks show in the final snapshot
        if progress is not None and reported < n:
            progress(n, n)

    def _run_one(self, progress: ProgressCallback | None, every: int) -> tuple[int, int]:
        """``run`` for one strategy on one symbol (most backtests), ``visit`` written out in
        the loop: the same steps in the same order, its state in locals (the row it acts on
        next, the next day, whether an order is open) and written back at the end. Returns
        the rows reported to ``progress`` and the visits.

        A visit costs some 2,000 bytecodes, a fifth of them ``visit``'s own bookkeeping
        (attribute reads, the three-way ``min``, the pair loop, calls): this loop does it once.
        """
        plan, portfolio, orders, log = self.plan, self.portfolio, self.open_orders, self.log
        pair = plan.pairs[0]
        sym, table = pair.symbol, pair.table
        positions, fills, marked = portfolio.positions, self.fills, self.marked
        stamps, opens, highs, lows = self.stamps, self.opens, self.highs, self.lows
        closes, volumes, timeframe = self.closes, self.volumes, self.timeframe
        build, runner, remark_close = self._bar, self.runner, self.remark_close
        # ``runner.on_bar_decided`` with ``_shown``, written out for the one strategy.
        open_bar, close_bar = runner.decided_steps(sym)
        strategy, ctx = runner.deciding(pair.slot)
        length = timedelta(seconds=Timeframe(timeframe).seconds)  # a bar's: ``now`` is its end
        # ``pair.next_after``'s runs, written out (one symbol: rows are its own), each list
        # ending in a run at NEVER: the search never runs off the end (no length test a visit).
        runs = tuple((f + [NEVER], e + [NEVER]) for f, e in pair._runs)
        steps, stamp, when = self._steps, self._stamp, self._when  # ``_datetime``'s
        n, reported, visits = stamps.size, 0, 0
        due, day_next, working, hinted = self.due[0], self.day_next, sym in self.open_next, False
        # The side held (``_held``): read again only after fills (nothing else moves it).
        held, seen = _side(positions, sym), len(fills)
        while True:
            row = due if due < day_next else day_next
            if working and row > marked[sym] + 1:  # ``open_next``: the symbol's next row
                row = marked[sym] + 1
            if row >= n:
                break
            # ``visit``: the venue marks ``sym`` at this bar unless fills at the open or a new
            # day come first (then the catch-up, unless the previous bar was the last visited).
            quiet = row != day_next and not working
            if (
                positions
                and (not quiet or len(positions) > (sym in positions))
                and marked.get(sym) != row - 1
            ):
                self.catch_up(row, skip=sym if quiet else None)
            # ``_datetime``: the last visit's datetime plus the step to this one.
            ns = stamps.item(row)
            step = steps.get(ns - stamp)
            if step is None:
                step = self._step(ns - stamp)
            when += step
            stamp = ns - ns % 1000  # the whole microseconds reached
            bar = build(
                sym,
                timeframe,
                when,
                opens.item(row),
                highs.item(row),
                lows.item(row),
                closes.item(row),
                volumes.item(row),
            )
            now = when + length  # the bar's end: its decisions' time
            open_bar(bar, now)
            # ``_shown``: the strategy sees the table's column if it acts for the side now held
            # (or while orders are open in the symbol).
            if len(fills) != seen:  # fills at the open
                held, seen = _side(positions, sym), len(fills)
            wanted = table.item(held + 1, row)
            acts = (wanted == wanted and wanted != held) or bool(orders and _open_in(orders, sym))
            hint = (
                strategy.on_decision(
                    bar, (table.item(0, row), table.item(1, row), table.item(2, row)), ctx
                )
                if acts
                else None
            )
            close_bar(now)
            marked[sym] = row
            if remark_close and sym in positions:
                portfolio.mark(sym, to_decimal(bar.close))  # as the full replay's bar handler
            filled = len(fills) != log.fills
            if filled:  # (``self.hinted`` is empty here: the one pair is rescheduled below)
                self._record(row)
                held = held if len(fills) == seen else _side(positions, sym)  # the decisions'
                seen = len(fills)
            working = _open_in(orders, sym) if orders else False
            hinted = hint is not None and not filled and not working and self._flat()
            if hinted:
                due = pair.next_affordable(row, held, hint)
            else:  # ``pair.next_after(row, held)``
                firsts, lasts = runs[held + 1]
                due = firsts[bisect_right(lasts, row)]
                due = due if due > row else row + 1  # inside the run: the next row
            if row >= day_next:
                day_next = plan.next_day_start(row)
            visits += 1
            if progress is not None and row + 1 - reported >= every:
                reported = row + 1 - (row + 1) % every
                progress(reported, n)
        self.due[0], self.day_next = due, day_next
        self._stamp, self._when = stamp, when
        self.hinted = {0} if hinted else set()
        self.open_next = {sym: NEVER} if working else {}
        return reported, visits

    def visit(self, row: int) -> None:
        """Replay bar ``row`` through the runner and schedule what comes next."""
        plan, portfolio, open_next = self.plan, self.portfolio, self.open_next
        positions = portfolio.positions
        single = self.single
        sym = self.only or self.symbols[row]
        # The venue marks ``sym`` at this bar before anything reads the account, unless fills at
        # the open or a new day come first; the peak of the bars skipped is added at the end.
        quiet = row != self.day_next and sym not in open_next
        if positions and (not quiet or len(positions) > (sym in positions)):
            # One symbol, its previous bar visited (a fill after a decision): marked already.
            if not single or self.marked.get(sym) != row - 1:
                self.catch_up(row, skip=sym if quiet else None)
        bar = self._bar(
            sym,
            self.timeframe,
            self._datetime(self.stamps.item(row)),
            self.opens.item(row),
            self.highs.item(row),
            self.lows.item(row),
            self.closes.item(row),
            self.volumes.item(row),
        )
        pairs, mine = plan.pairs, plan.by_symbol[sym]
        self._at = (sym, mine, row if single else plan.local.item(row))
        hints = self.runner.on_bar_decided(bar, self._shown)
        self.marked[sym] = row
        if self.remark_close and sym in positions:
            portfolio.mark(sym, to_decimal(bar.close))  # as the full replay's bar handler
        filled = len(self.fills) != self.log.fills
        if filled:
            self._record(row)
        orders = self.open_orders
        working = _open_in(orders, sym) if orders else False
        pos = positions.get(sym)
        held = 0 if pos is None else (pos.quantity > ZERO) - (pos.quantity < ZERO)  # ``_held``
        due = self.due
        for k in mine:
            hint = hints.get(pairs[k].slot) if hints else None
            if hint is not None and not filled and not working and self._flat():
                due[k] = pairs[k].next_affordable(row, held, hint)
                self.hinted.add(k)
            else:
                due[k] = pairs[k].next_after(row, held)
                if self.hinted:
                    self.hinted.discard(k)
        if working:
            if single:  # ``next_row_of``: the next row is the symbol's
                open_next[sym] = row + 1 if row + 1 < self.stamps.size else NEVER
            else:
                open_next[sym] = plan.next_row_of(sym, row)
        elif open_next:
            open_next.pop(sym, None)
        if row >= self.day_next:
            self.day_next = plan.next_day_start(row)

    def _record(self, row: int) -> None:
        """Log the cash and positions after ``row`` (its fills changed them); reschedule the
        pairs an affordability bound scheduled: bounds hold only while the account stays as
        it was."""
        log, fills = self.log, len(self.fills)
        # ``log.record``, written out (a call fewer a fill)
        log.rows.append(row)
        log.cash.append(self.portfolio.cash)
        log.positions.append({k: p.quantity for k, p in self.portfolio.positions.items()})
        if self.fill_rows is not None:
            self.fill_rows += [row] * (fills - log.fills)
        log.fills = fills
        if self.hinted:
            pairs = self.plan.pairs
            for k in self.hinted:
                self.due[k] = pairs[k].next_after(row, self._held(pairs[k].symbol))
            self.hinted.clear()

    def _datetime(self, stamp: int) -> datetime:
        """Return ``to_datetime(stamp)`` (visits come in time order): the last visit's datetime
        plus the step, exact to the microsecond; timedelta's constructor costs several
        additions, so steps are kept by size."""
        step = self._steps.get(stamp - self._stamp)
        if step is None:
            step = self._step(stamp - self._stamp)
        when = self._when = self._when + step
        self._stamp = stamp - stamp % 1000  # the whole microseconds reached
        return when

    def _step(self, gap: int) -> timedelta:
        """Return the step of ``gap`` nanoseconds (whole microseconds), kept for reuse."""
        step = timedelta(0, 0, gap // 1000)
        if len(self._steps) < 1024:
            self._steps[gap] = step
        return step

    def _shown(self) -> list[tuple[int, tuple[float, float, float]]]:
        """Return what to show the strategies after the venue saw the bar being visited
        (``_at``: its symbol, pairs and row in the symbol): the table columns that act for
        the side then held (all of them while orders are open in the symbol)."""
        sym, mine, i = self._at
        pairs = self.plan.pairs
        orders = self.open_orders
        if orders and _open_in(orders, sym):
            return [(pairs[k].slot, _column(pairs[k].table, i)) for k in mine]
        pos = self.portfolio.positions.get(sym)  # ``_held``, written out
        held = 0 if pos is None else (pos.quantity > ZERO) - (pos.quantity < ZERO)
        out = []
        for k in mine:
            table = pairs[k].table
            wanted = table.item(held + 1, i)
            if wanted == wanted and wanted != held:  # NaN or the side held: nothing to do
                out.append((pairs[k].slot, _column(table, i)))
        return out

    def catch_up(self, row: int, *, skip: str | None = None, flat_too: bool = False) -> None:
        """Mark held positions (but ``skip``) at their last close before ``row``."""
        portfolio, marked = self.portfolio, self.marked
        for sym, pos in portfolio.positions.items():
            if (pos.quantity or flat_too) and sym != skip:
                last = self.plan.last_row_before(sym, row)
                if last >= 0 and marked.get(sym) != last:
                    portfolio.mark(
                        sym, to_decimal(self.closes.item(last)), to_datetime(self.stamps.item(last))
                    )
                    marked[sym] = last

    def finish(self) -> np.ndarray:
        """Return the equity after every row; raise the portfolio's peak to the unvisited bars."""
        d, log, portfolio = self.data, self.log, self.portfolio
        single = len(self.plan.rows) == 1
        by_row, counts, marks = equity_by_row(log, d.symbol, d.close, single=single)
        self.in_market = np.repeat(log.holding(), counts)  # a position is open after the row
        top = int(np.argmax(by_row))
        if by_row[top] > float(portfolio.peak_equity):
            state = log.state_after(top)
            held = [(s, q) for s, q in log.positions[state].items() if q]
            exact = log.cash[state] + sum(
                (q * to_decimal(float(marks[s][top])) for s, q in held), ZERO
            )
            portfolio.peak_equity = max(portfolio.peak_equity, exact)
        return by_row

    def _flat(self) -> bool:
        return not any(p.quantity for p in self.portfolio.positions.values())

    def _held(self, symbol: str) -> int:
        pos = self.portfolio.positions.get(symbol)
        if pos is None:
            return 0
        qty = pos.quantity
        return (qty > ZERO) - (qty < ZERO)  # Decimal to Decimal: no int converted
