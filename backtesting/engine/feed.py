"""The event-driven backtest's bar feed: ``Bar`` events built lazily from the bar columns.

A full replay builds one ``Bar`` per row, and with a strategy's own ``on_bar`` that is the
largest per-bar cost outside the strategy: ``Bar`` is a frozen slotted dataclass, so even its
``fast_init`` constructor (``marketdata.engine.records``) stores each of its 12 fields through a
descriptor call. ``bar_builder`` returns a function that fills an instance of a subclass of
``Bar`` adding no slots but plain ``object`` attribute setting (so ordinary attribute stores,
which CPython specialises for slots) and then gives the object ``Bar`` as its class (CPython
allows ``__class__`` assignment between classes of one layout, and checks a subclass that adds
nothing quickest): a genuine ``Bar``, equal, hashable and as frozen as any, built in a quarter of
the time. Defaults that are literals are stored as constants. If ``Bar`` ever gains a layout
this cannot copy (a ``__dict__``, a ``__post_init__``, a default factory), the builder is
``Bar`` itself; tests check both give equal bars.

Timestamps are built by accumulation (``datetimes``), exactly as ``result.to_datetime`` gives
them.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from itertools import accumulate, chain, islice, repeat, tee
from typing import Any

import numpy as np

from backtesting.engine.result import to_datetime
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar

BarBuilder = Callable[[str, str, datetime, float, float, float, float, float], Bar]


def datetimes(ts_ns: np.ndarray) -> Iterator[datetime]:
    """Return the UTC datetimes of ``ts_ns`` as ``to_datetime`` gives them, built lazily.

    Each is the previous one plus its step (one ``timedelta`` per distinct step): exact
    integer arithmetic, and a third of the cost of converting every stamp on its own.
    """
    us = np.asarray(ts_ns, dtype=np.int64) // 1000
    if us.size == 0:
        return iter(())
    first = to_datetime(int(us[0]) * 1000)
    steps = np.diff(us)
    if steps.size == 0 or bool((steps == steps[0]).all()):  # a regular grid: the usual case
        step = timedelta(0, 0, int(steps[0])) if steps.size else timedelta(0)
        deltas: Iterable[timedelta] = islice(repeat(step), steps.size)
    else:
        distinct, which = np.unique(steps, return_inverse=True)
        table = [timedelta(0, 0, int(s)) for s in distinct.tolist()]
        deltas = map(table.__getitem__, which.tolist())
    return accumulate(deltas, operator.add, initial=first)


def bar_events(
    data: Any, build: BarBuilder | None = None, starts: Iterator[datetime] | None = None
) -> Iterator[Bar]:
    """Return ``data``'s rows (a ``runner.BarData``) as ``Bar`` events, built lazily.

    ``starts``: the rows' times as ``datetimes(data.ts)`` gives them, when the caller has them.
    """
    return map(
        build or BUILD_BAR,
        values(data.symbol),
        repeat(data.timeframe),
        datetimes(data.ts) if starts is None else starts,
        values(data.open),
        values(data.high),
        values(data.low),
        values(data.close),
        values(data.volume),
    )


def values(column: np.ndarray, chunk: int = 8192) -> Iterator[Any]:
    """Return ``column``'s items as Python objects, converted ``chunk`` at a time as read.

    ``tolist()`` of the whole column made every float of a million bars at once (24 bytes
    each, five columns) before the first bar, and the replay then read them back from memory
    long evicted from the caches; a chunk at a time they are made just before use and freed
    with their bars, so the memory is reused: about a fifth less CPU for the bar stream.
    """
    if column.size <= chunk:
        return iter(column.tolist())
    return chain.from_iterable(
        column[start : start + chunk].tolist() for start in range(0, column.size, chunk)
    )


def bars_and_ends(data: Any) -> tuple[Iterator[Bar], Iterator[datetime]]:
    """Return ``data``'s rows as ``Bar`` events and each bar's end (``ts`` plus the timeframe,
    when its decisions are stamped), both built lazily.

    On a regular grid of one bar a step of the timeframe (the usual case) a bar ends when the
    next starts: the two share each ``datetime``, half the building.
    """
    ts = np.asarray(data.ts, dtype=np.int64)
    length = TIMEFRAME_SECONDS[data.timeframe] * 1_000_000_000
    steps = np.diff(ts)
    if ts.size and bool((steps == length).all()):
        starts, ends = tee(datetimes(np.append(ts, ts[-1] + length)))
        next(ends)  # a bar's end is the next one's start
        return bar_events(data, starts=starts), ends
    return bar_events(data), datetimes(ts + length)


_GIVEN = ("symbol", "timeframe", "ts", "open", "high", "low", "close", "volume")


def _bar_twin() -> type | None:
    """Return a subclass of ``Bar`` adding no slots but plain attribute setting (see module),
    or None if ``Bar``'s layout cannot be copied."""
    fields = dataclasses.fields(Bar)
    names = tuple(f.name for f in fields)
    if (
        names[: len(_GIVEN)] != _GIVEN
        or getattr(Bar, "__slots__", None) != names
        or hasattr(Bar, "__post_init__")
        or any(f.default is dataclasses.MISSING for f in fields[len(_GIVEN) :])
    ):
        return None
    return type(
        "_BarSlots",
        (Bar,),
        {
            "__slots__": (),
            "__init__": object.__init__,
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        },
    )


def bar_builder() -> BarBuilder:
    """Return the fastest exact ``Bar`` constructor for the feed's eight columns (see module)."""
    twin = _bar_twin()
    if twin is None:
        return Bar
    rest = dataclasses.fields(Bar)[len(_GIVEN) :]
    namespace: dict[str, Any] = {"_Twin": twin, "_Bar": Bar}
    lines = [f"    bar.{name} = {name}" for name in _GIVEN]
    for f in rest:
        if f.default is None or type(f.default) in (bool, int, str):
            lines.append(f"    bar.{f.name} = {f.default!r}")  # a constant: no global lookup
        else:
            namespace[f"_default_{f.name}"] = f.default
            lines.append(f"    bar.{f.name} = _default_{f.name}")
    source = (
        f"def build_bar({', '.join(_GIVEN)}):\n    bar = _Twin()\n"
        + "\n".join(lines)
        + "\n    bar.__class__ = _Bar\n    return bar\n"
    )
    exec(source, namespace)  # noqa: S102 - code built from Bar's own field names
    build = namespace["build_bar"]
    probe = (
        "BTC-USD",
        "1m",
        to_datetime(0),
        1.0,
        2.0,
        0.5,
        1.5,
        3.0,
    )
    try:
        made = build(*probe)
    except TypeError:  # a layout CPython will not swap: fall back to the constructor
        return Bar
    if type(made) is not Bar or made != Bar(*probe):
        return Bar
    return build


BUILD_BAR: BarBuilder = bar_builder()

# ``Bar``'s fields after the eight columns, with their defaults, as ``_grid_pairs`` writes them.
_GRID_DEFAULTS = (("vwap", None), ("trade_count", 0), ("venue", "sim"), ("amended", False))


def _grid_twin() -> type | None:
    """Return the twin ``_grid_pairs`` builds bars in, or None when ``Bar`` no longer has the
    fields and defaults it writes out (``bar_pairs`` then takes the general path)."""
    written = [(name, dataclasses.MISSING) for name in _GIVEN] + list(_GRID_DEFAULTS)
    found = [(f.name, f.default) for f in dataclasses.fields(Bar)]
    same = [(n, d, type(d)) for n, d in found] == [(n, d, type(d)) for n, d in written]
    return _bar_twin() if same and BUILD_BAR is not Bar else None


_GRID_TWIN: type | None = _grid_twin()


def bar_pairs(data: Any, chunk: int = 8192) -> Iterator[tuple[Bar, datetime]]:
    """Return ``data``'s rows as (``Bar``, its end) pairs, built lazily: what a full replay
    reads (``StrategyRunner.replay_pairs``); the same bars and ends as ``bars_and_ends``.

    On a regular grid of one bar a step of the timeframe (the usual case) one generator makes
    both, each bar built where it is yielded and each end the start plus the step: the pair of
    iterators of ``bars_and_ends`` cost a Python call from C a bar (``build_bar``), two ``tee``
    readers, an ``operator.add`` call from ``accumulate`` and a ``chain`` layer a column, some
    500 instructions a bar (~3 % of an event-style strategy's run).
    """
    ts = np.asarray(data.ts, dtype=np.int64)
    seconds = TIMEFRAME_SECONDS[data.timeframe]
    if _GRID_TWIN is None or not ts.size or not bool((np.diff(ts) == seconds * 10**9).all()):
        return zip(*bars_and_ends(data), strict=False)
    return _grid_pairs(data, to_datetime(int(ts[0])), timedelta(0, seconds), chunk)


def _grid_pairs(
    data: Any, ts: datetime, step: timedelta, chunk: int
) -> Iterator[tuple[Bar, datetime]]:
    """Yield the rows of a regular grid starting at ``ts``, a ``step`` apart, as (bar, end)."""
    twin, bar_class, timeframe = _GRID_TWIN, Bar, data.timeframe
    columns = (data.symbol, data.open, data.high, data.low, data.close, data.volume)
    for first in range(0, len(data.ts), chunk):  # a chunk at a time: see ``values``
        rows = zip(*[column[first : first + chunk].tolist() for column in columns], strict=True)
        for symbol, open_, high, low, close, volume in rows:
            end = ts + step  # as ``datetimes`` accumulates: exact integer microseconds
            bar = twin()  # ``Bar(symbol, timeframe, ts, ...)`` as ``build_bar`` makes it
            bar.symbol = symbol
            bar.timeframe = timeframe
            bar.ts = ts
            bar.open = open_
            bar.high = high
            bar.low = low
            bar.close = close
            bar.volume = volume
            bar.vwap = None
            bar.trade_count = 0
            bar.venue = "sim"
            bar.amended = False
            bar.__class__ = bar_class
            yield bar, end
            ts = end
