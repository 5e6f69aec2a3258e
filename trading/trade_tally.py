"""The performance page's trade metrics at any number of fills: round trips tallied once, kept in
the database (``TradeTally``), and extended by a background task with the fills stored since.

A from-scratch rebuild of an account's round trips costs ~15 s of CPU at 1,000,000 fills, far
too long for a page, and it used to be paid by every web process at every start. The checkpoint
holds the last fill tallied, per symbol the last fill that closed a round trip (the "cut": flat
there, or flipped, then with what the fill opened beyond the close), and every round trip closed
up to those points (``TradeTallyTrips``: entry time, exit time, closing fill id, P&L, return). A
process reads the checkpoint (the trips at once, the fills after each symbol's cut: the open
"tail"), then reads only the fills after the last one tallied (one index range scan), rebuilds
trips over tail + new fills with the engine's own ``round_trips`` (no second copy of the P&L
maths: a flip's remainder is the trade ``round_trips`` left open at the cut) and stores the trips
they close with the new cuts and last fill, in one transaction guarded by the checkpoint's
``version`` (a conditional update: two processes never both extend from the same checkpoint; a
process killed mid-way leaves the checkpoint as it was). Other processes then read only what
was added.

Pages never extend the tally: ``trade_metrics`` reads the figures the background refresh stored
on the checkpoint (two rows) with their age, and queues a refresh (a django-q2 task) when fills
came since; the every-minute schedule ``trade_tallies_refresh`` extends every account's tally that
is behind. Reading the checkpoint's stored trips (up to ``COMPACT_AFTER`` rows, tens of MB at
millions of fills), merging them and compacting happen in that task, not in a page load.

The figures are exactly those of ``summarize`` over ``round_trips_of`` (every fill, newest
entry first): the trips are kept ordered as ``round_trips`` orders them (by entry time, ties in
the order they closed, i.e. by the closing fill's (ts, id)) and handed over in that order
reversed, so even the floating-point sums are the same. A long tally (the first of a large
account) commits every ``CHUNK`` fills, so a task killed mid-way leaves its work stored and the
next one goes on from there; a fill stored with a time before the last one tallied (a late
insert), or the last one tallied gone (a restored database), starts the tally again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from backtesting.engine.metrics import summarize
from backtesting.engine.result import RoundTrip, round_trips
from trading.engine.orders import Fill as EngineFill
from trading.engine.orders import Liquidity, OrderSide
from trading.models import Account, Fill, TradeTally, TradeTallyTrips

logger = logging.getLogger(__name__)
CHUNK = 50_000  # fills per stored step of a long tally
COMPACT_AFTER = 256  # stored trip rows of a generation before they are merged into one
MOVING = "trade metrics: other processes kept extending the stored tally; the next refresh reads it"
TRADE_KEYS = ("trades", "win_rate", "profit_factor", "expectancy", "average_win", "average_loss",
              "best_trade", "worst_trade", "average_trade", "sqn", "kelly")  # fmt: skip
# A closed round trip: entry and exit time (µs since the epoch), the fill that closed it, P&L
# (as ``float(trip.pnl)``) and return; ordered by (entry, exit, fill) as ``round_trips`` is.
TRIP = np.dtype([("entry", "<i8"), ("exit", "<i8"), ("fill", "<i8"), ("pnl", "<f8"),
                 ("ret", "<f8")])  # fmt: skip
_FIELDS = ("pk", "order_id", "symbol__name", "side", "quantity", "price", "fee", "liquidity", "ts")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_BUY = OrderSide.BUY


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICRO


@dataclass
class _Symbol:
    # [ts, fill id, remainder] of the last fill that closed a trip (None: none yet); remainder:
    # what it opened beyond the close (a flip) as [side, quantity, price, fee, order, liquidity]
    cut: list | None = None
    tail: list[EngineFill] = field(default_factory=list)  # the remainder and the fills after
    pks: list[int] = field(default_factory=list)  # their ids (the remainder: its fill's)


@dataclass
class _Tally:
    """This process's copy of an account's stored checkpoint."""

    row: int = 0  # the checkpoint's id
    generation: int = -1  # of the stored checkpoint copied (-1: none yet)
    version: int = 0
    chunks: int = 0  # stored trip rows of this generation
    last: tuple[datetime, int] | None = None  # the last fill tallied (ts, pk)
    high_pk: int = 0  # the highest fill id tallied
    symbols: dict[str, _Symbol] = field(default_factory=dict)
    trips: np.ndarray = field(default_factory=lambda: np.empty(0, TRIP))  # sorted
    figures: dict | None = None  # the metrics as of ``version`` (None once it moves)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Step:
    """An extension of a tally by some fills, not stored yet."""

    symbols: dict[str, _Symbol]
    trips: np.ndarray  # closed by these fills
    last: tuple[datetime, int]
    high_pk: int


_TALLIES: dict[int, _Tally] = {}
_GUARD = threading.Lock()


# ----------------------------------------------------------------- trips


def _merge(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Return the trips of ``old`` (sorted) and ``new`` as one sorted array."""
    if new.size == 0:
        return old
    new = new[np.lexsort((new["fill"], new["exit"], new["entry"]))]
    if old.size == 0:
        return new
    first, end = new[0], old[-1]
    if (first["entry"], first["exit"], first["fill"]) > (end["entry"], end["exit"], end["fill"]):
        return np.concatenate([old, new])
    entries = old["entry"]
    at = np.searchsorted(entries, new["entry"], "left")
    upto = np.searchsorted(entries, new["entry"], "right")
    for i in np.flatnonzero(upto > at):  # the same entry time: by (exit, closing fill)
        key, j = (new["exit"][i], new["fill"][i]), at[i]
        while j < upto[i] and (old["exit"][j], old["fill"][j]) < key:
            j += 1
        at[i] = j
    return np.insert(old, at, new)


def _closing(fills: list[EngineFill]) -> list[int]:
    """Return the indices of the fills (of one symbol, from flat) that close a round trip: those
    that take the position to zero or through it."""
    closing, position = [], 0
    for i, fill in enumerate(fills):
        before = position
        position += fill.quantity if fill.side is _BUY else -fill.quantity
        if before and (not position or (position > 0) != (before > 0)):
            closing.append(i)
    return closing


def _trips(fills: list[EngineFill], pks: list[int]) -> tuple[np.ndarray, RoundTrip | None]:
    """Return the closed round trips of one symbol's ``fills`` (from flat) as TRIP records, and
    the trade left open.

    ``round_trips`` gives one symbol's trips in the order they closed (each enters at or after
    the previous one's exit; ties keep that order, the open one last); ``_closing`` finds each
    one's closing fill."""
    closing = _closing(fills)
    trips = round_trips(fills)
    left = trips.pop() if trips and trips[-1].is_open else None
    if len(trips) != len(closing):  # never: the same quantities, exact decimals
        raise RuntimeError(f"{len(trips)} closed trips but {len(closing)} closing fills")
    records = np.array(
        [(_us(t.entry_ts), _us(fills[i].ts), pks[i], float(t.pnl), t.return_pct)
         for t, i in zip(trips, closing, strict=True)],
        dtype=TRIP,
    )  # fmt: skip
    return records, left


def _remainder(cut: list | None, symbol: str) -> list[EngineFill]:
    """Return the fill a stored cut starts the tail with (what a flip opened), if any."""
    if cut is None or cut[2] is None:
        return []
    side, qty, price, fee, order, liquidity = cut[2]
    ts = datetime.fromisoformat(cut[0])
    return [EngineFill(order, symbol, OrderSide(side), Decimal(qty), Decimal(price), Decimal(fee),
                       Liquidity(liquidity), ts)]  # fmt: skip


def _unpack(rows) -> np.ndarray:
    parts = [np.frombuffer(bytes(data), dtype=TRIP) for data in rows]
    return np.concatenate(parts) if parts else np.empty(0, TRIP)


# ----------------------------------------------------------------- reading


def _engine_fills(rows: list[tuple]) -> list[tuple[int, EngineFill]]:
    return [
        (pk, EngineFill(str(order), symbol, OrderSide(side), qty, price, fee, Liquidity(liq), ts))
        for pk, order, symbol, side, qty, price, fee, liq, ts in rows
    ]


def _after(ts: datetime, pk: int) -> Q:
    return Q(ts__gt=ts) | Q(ts=ts, pk__gt=pk)


def _new_fills(account_id: int, last: tuple[datetime, int] | None, limit: int) -> list[tuple]:
    rows = Fill.objects.filter(account_id=account_id)
    if last is not None:
        rows = rows.filter(_after(*last))
    return list(rows.order_by("ts", "pk").values_list(*_FIELDS)[:limit])


def _tail(account_id: int, symbol: str, cut: list | None, last: tuple[datetime, int]) -> _Symbol:
    """Return a symbol's state as stored: its cut's remainder and fills after it to ``last``."""
    ts, pk = last
    rows = Fill.objects.filter(account_id=account_id, symbol__name=symbol).filter(
        Q(ts__lt=ts) | Q(ts=ts, pk__lte=pk)
    )
    tail = _remainder(cut, symbol)
    pks = [cut[1]] if tail else []
    if cut is not None:
        rows = rows.filter(_after(datetime.fromisoformat(cut[0]), cut[1]))
    pairs = _engine_fills(list(rows.order_by("ts", "pk").values_list(*_FIELDS)))
    return _Symbol(cut, tail + [f for _, f in pairs], pks + [pk for pk, _ in pairs])


def _checkpoint(account_id: int) -> TradeTally:
    try:
        return TradeTally.objects.get_or_create(account_id=account_id)[0]
    except IntegrityError:  # created by another process meanwhile
        return TradeTally.objects.get(account_id=account_id)


def _sync(tally: _Tally, row: TradeTally, account_id: int) -> bool:
    """Make ``tally`` the stored checkpoint ``row``; return False if it moved meanwhile."""
    if (row.pk, row.generation, row.version) == (tally.row, tally.generation, tally.version):
        return True
    trips = TradeTallyTrips.objects.filter(
        tally_id=row.pk, generation=row.generation, version__lte=row.version
    )
    # Read every trip again unless the checkpoint only moved forward (a new row, or one put
    # back from a backup, is another checkpoint).
    full = (row.pk, row.generation) != (tally.row, tally.generation) or row.version < tally.version
    if not full:
        trips = trips.filter(version__gt=tally.version)
    data = list(trips.order_by("version").values_list("data", flat=True))
    last = None if row.last_ts is None else (row.last_ts, row.last_fill)
    symbols = {
        name: _tail(account_id, name, cut, last) if last else _Symbol(cut)
        for name, cut in row.flats.items()
    }
    # The stored rows belong to ``row`` only if it is still the checkpoint (a reset or a
    # compaction deletes a generation's rows).
    now = TradeTally.objects.filter(pk=row.pk).values_list("generation", "version").first()
    if now is None or now[0] != row.generation:
        return False
    tally.trips = _merge(np.empty(0, TRIP) if full else tally.trips, _unpack(data))
    tally.chunks = (0 if full else tally.chunks) + len(data)
    tally.row, tally.generation, tally.version = row.pk, row.generation, row.version
    tally.last, tally.high_pk, tally.symbols = last, row.high_fill, symbols
    tally.figures = None
    return True


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


# ----------------------------------------------------------------- extending


def _advance(tally: _Tally, rows: list[tuple]) -> _Step:
    """Return the extension of ``tally`` by ``rows`` (new fills in (ts, id) order): each symbol's
    trips closed up to its last closing fill (its new cut), and what is after it as its tail."""
    by_symbol: dict[str, list[tuple[int, EngineFill]]] = {}
    for pair in _engine_fills(rows):
        by_symbol.setdefault(pair[1].symbol, []).append(pair)
    symbols = dict(tally.symbols)
    closed = []
    for name, pairs in by_symbol.items():
        state = symbols.get(name) or _Symbol()
        work = state.tail + [f for _, f in pairs]
        pks = state.pks + [pk for pk, _ in pairs]
        closing = _closing(work)
        if not closing:
            symbols[name] = _Symbol(state.cut, work, pks)
            continue
        at = closing[-1]
        records, left = _trips(work[: at + 1], pks[: at + 1])
        closed.append(records)
        fill, rest = work[at], []
        if left is not None:  # a flip: the tail starts with what the fill opened
            rest = [EngineFill(fill.order_id, name, fill.side, left.quantity, fill.price,
                               left.fees, fill.liquidity, fill.ts)]  # fmt: skip
        remainder = [[f.side.value, str(f.quantity), str(f.price), str(f.fee), f.order_id,
                      f.liquidity.value] for f in rest]  # fmt: skip
        cut = [fill.ts.isoformat(), pks[at], remainder[0] if remainder else None]
        symbols[name] = _Symbol(cut, rest + work[at + 1 :], pks[at : at + 1] * len(rest)
                                + pks[at + 1 :])  # fmt: skip
    trips = np.concatenate(closed) if closed else np.empty(0, TRIP)
    high = max(tally.high_pk, max(row[0] for row in rows))
    return _Step(symbols, trips, (rows[-1][-1], rows[-1][0]), high)


def _write_trips(row_pk: int, generation: int, version: int, trips: np.ndarray) -> None:
    TradeTallyTrips.objects.create(
        tally_id=row_pk, generation=generation, version=version, trips=trips.size,
        data=trips.tobytes(),
    )  # fmt: skip


def _store(tally: _Tally, step: _Step) -> bool:
    """Store ``step`` as the next version of the checkpoint ``tally`` copies, in one
    transaction; return False (nothing stored) if another process moved the checkpoint first."""
    version = tally.version + 1
    flats = {name: state.cut for name, state in step.symbols.items()}
    with transaction.atomic():
        moved = TradeTally.objects.filter(
            pk=tally.row, generation=tally.generation, version=tally.version
        ).update(
            version=version, last_ts=step.last[0], last_fill=step.last[1],
            high_fill=step.high_pk, flats=flats, updated_at=timezone.now(),
        )  # fmt: skip
        if moved != 1:
            return False
        if step.trips.size:
            _write_trips(tally.row, tally.generation, version, step.trips)
    tally.version, tally.last, tally.high_pk = version, step.last, step.high_pk
    tally.symbols = step.symbols
    tally.trips = _merge(tally.trips, step.trips)
    tally.chunks += 1 if step.trips.size else 0
    tally.figures = None
    return True


def _restart(tally: _Tally) -> None:
    """Start the checkpoint again from no fill (a late insert, a restored database)."""
    generation = tally.generation + 1
    with transaction.atomic():
        moved = TradeTally.objects.filter(pk=tally.row, generation=tally.generation).update(
            generation=generation, version=0, last_ts=None, last_fill=0, high_fill=0, flats={},
            updated_at=timezone.now(),
        )  # fmt: skip
        if moved == 1:
            TradeTallyTrips.objects.filter(tally_id=tally.row, generation__lt=generation).delete()
    if moved == 1:
        tally.generation, tally.version, tally.chunks = generation, 0, 0
        tally.last, tally.high_pk, tally.symbols = None, 0, {}
        tally.trips, tally.figures = np.empty(0, TRIP), None


def _compact(tally: _Tally) -> None:
    """Merge the stored trip rows of the checkpoint into one (a new generation)."""
    generation = tally.generation + 1
    with transaction.atomic():
        moved = TradeTally.objects.filter(
            pk=tally.row, generation=tally.generation, version=tally.version
        ).update(generation=generation)
        if moved != 1:
            return
        _write_trips(tally.row, generation, tally.version, tally.trips)
        TradeTallyTrips.objects.filter(tally_id=tally.row, generation__lt=generation).delete()
    tally.generation, tally.chunks = generation, 1


def _consume(tally: _Tally, account_id: int) -> int | None:
    """Tally and store every new fill (``CHUNK`` a step); return how many were read, or None
    if another process moved the checkpoint (``tally`` then copies no step)."""
    read = 0
    while rows := _new_fills(account_id, tally.last, CHUNK):
        if not _store(tally, _advance(tally, rows)):
            return None
        read += len(rows)
    if tally.chunks > COMPACT_AFTER:
        _compact(tally)
    return read


def _copy(tally: _Tally, row: TradeTally, account_id: int) -> bool:
    """``_sync``, starting the tally again if the stored rows cannot be read (edited by hand,
    written by another version) rather than failing the refresh."""
    try:
        return _sync(tally, row, account_id)
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError):
        logger.warning("stored trade tally of account %s unreadable: starting again",
                       account_id, exc_info=True)  # fmt: skip
        tally.row, tally.generation = row.pk, row.generation
        _restart(tally)
        return False


def trade_tally_extend(*, account: Account) -> tuple[dict | None, str]:
    """Extend the account's stored tally with every fill since, store its figures and return
    them (``summarize``'s trade figures of the closed round trips) and a note; (None, why) if
    other processes kept moving the checkpoint. The background refresh's work: pages read the
    stored figures (``trade_metrics``)."""
    with _GUARD:
        tally = _TALLIES.setdefault(account.pk, _Tally())
    with tally.lock:
        for _attempt in range(5):  # another process may move the checkpoint meanwhile
            row = _checkpoint(account.pk)
            if not _copy(tally, row, account.pk):
                continue
            if _stale(tally, account.pk):
                _restart(tally)
                continue
            if _consume(tally, account.pk) is not None:
                break
        else:
            if tally.generation < 0:  # never copied the checkpoint (it kept moving)
                return None, MOVING
        if tally.figures is None:
            tally.figures = _figures(tally)
            _publish(tally)
        return dict(tally.figures), ""


def _figures(tally: _Tally) -> dict:
    """Return ``summarize``'s trade figures over every closed trip of the tally, in the order
    ``round_trips_of`` gives them (newest entry first)."""
    trips = tally.trips  # the tails close no trip: they start at the last closing fill
    figures = summarize(
        [1.0], initial=1.0, periods_per_year=1.0,
        trade_pnls=np.ascontiguousarray(trips["pnl"][::-1]),
        trade_returns=np.ascontiguousarray(trips["ret"][::-1]),
    )  # fmt: skip
    return {k: figures[k] for k in TRADE_KEYS}


# ----------------------------------------------------------------- stored figures (pages)

REFRESH_TASK = "trading.trade_tally.trade_tally_refresh"
REFRESH_PENDING = 300  # seconds a requested refresh is not requested again (it clears itself)
WAITING = "trade metrics: being tallied in the background (they show once the first tally ends)"


@dataclass(frozen=True, slots=True)
class TradeFigures:
    """What a page shows of the stored tally: its figures (None before the first), when they
    were stored, whether fills came since (a refresh then runs) and a note for people."""

    figures: dict | None
    as_of: datetime | None
    behind: bool
    note: str


def _encode(figures: dict) -> dict:
    return {k: v if not isinstance(v, float) or np.isfinite(v) else str(v)
            for k, v in figures.items()}  # fmt: skip


def _decode(stored: dict) -> dict:
    return {k: float(v) if isinstance(v, str) else v for k, v in stored.items()}


def _publish(tally: _Tally) -> None:
    """Store the tally's figures on its checkpoint, unless another process moved it."""
    TradeTally.objects.filter(
        pk=tally.row, generation=tally.generation, version=tally.version
    ).update(figures=_encode(tally.figures), figures_at=timezone.now())


def _refresh_key(account_id: int) -> str:
    return f"trade-tally-refresh:{account_id}"


def trade_tally_request(*, account_id: int) -> bool:
    """Queue a background refresh of the account's tally unless one is queued; True if queued."""
    from django.core.cache import cache
    from django_q.tasks import async_task

    if not cache.add(_refresh_key(account_id), 1, REFRESH_PENDING):
        return False
    async_task(REFRESH_TASK, account_id, task_name=f"trade tally {account_id}"[:100])
    return True


def trade_tally_refresh(account_id: int) -> bool:
    """Extend the account's tally with every fill since and store its figures (a django-q2
    task); return whether figures are stored (False: the account is gone)."""
    from django.core.cache import cache

    try:
        account = Account.objects.filter(pk=account_id).first()
        if account is None:
            return False
        figures, _ = trade_tally_extend(account=account)
        return figures is not None
    finally:
        cache.delete(_refresh_key(account_id))


def trade_tallies_refresh() -> list[int]:
    """Refresh every account's tally that misses fills or figures or whose last fill tallied is
    gone (the every-minute schedule: late inserts and restored databases too); return the
    accounts refreshed."""
    return [account_id for account_id in _tallies_behind() if trade_tally_refresh(account_id)]


def _tallies_behind() -> list[int]:
    rows = {row.account_id: row for row in TradeTally.objects.all()}
    behind = []
    for account_id in Account.objects.order_by("pk").values_list("pk", flat=True):
        row = rows.get(account_id)
        if row is None or row.figures is None or _fills_since(account_id, row) or _gone(row):
            if row is not None or _has_fills(account_id):
                behind.append(account_id)
    return behind


def _gone(row: TradeTally) -> bool:
    """Whether the last fill the checkpoint tallied is gone (a database restored or reset)."""
    if row.last_ts is None:
        return False
    return not Fill.objects.filter(pk=row.last_fill, account_id=row.account_id).exists()


def _fills_since(account_id: int, row: TradeTally) -> bool:
    """Whether fills were stored since the checkpoint's tally: a higher id than any it tallied
    (a fill stamped late too; one index probe)."""
    return Fill.objects.filter(account_id=account_id, pk__gt=row.high_fill).exists()


def trade_tally_schedule_ensure() -> bool:
    """Create the every-minute schedule that refreshes the trade tallies; True if new."""
    from monitoring.schedules import schedule_ensure

    return schedule_ensure("trade tallies", "trading.trade_tally.trade_tallies_refresh",
                           every_minute=True)  # fmt: skip


def trade_metrics(*, account: Account, refresh: bool = True) -> TradeFigures:
    """Return the trade figures the background refresh stored for the account, with their age;
    queue a refresh when fills came since (``refresh``). Reads two rows: never a fill's data,
    never the stored trips (the merge runs in the task, not in a page load)."""
    row = TradeTally.objects.filter(account=account).first()
    if row is None and not _has_fills(account.pk):  # never traded: nothing to tally
        return TradeFigures(_figures(_Tally()), None, False, "")
    behind = row is None or row.figures is None or _fills_since(account.pk, row)
    if behind and refresh:
        trade_tally_request(account_id=account.pk)
    if row is None or row.figures is None:
        return TradeFigures(None, None, True, WAITING)
    return TradeFigures(_decode(row.figures), row.figures_at, behind, "")


def _has_fills(account_id: int) -> bool:
    return Fill.objects.filter(account_id=account_id).exists()
