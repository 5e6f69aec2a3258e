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
from itertools import accumulate, islice, repeat
from typing import Any

import numpy as np

from backtesting.engine.result import to_datetime
from marketdata.engine.events import Bar

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


def bar_events(data: Any, build: BarBuilder | None = None) -> Iterator[Bar]:
    """Return ``data``'s rows (a ``runner.BarData``) as ``Bar`` events, built lazily."""
    return map(
        build or BUILD_BAR,
        data.symbol.tolist(),
        repeat(data.timeframe),
        datetimes(data.ts),
        data.open.tolist(),
        data.high.tolist(),
        data.low.tolist(),
        data.close.tolist(),
        data.volume.tolist(),
    )


_GIVEN = ("symbol", "timeframe", "ts", "open", "high", "low", "close", "volume")


def bar_builder() -> BarBuilder:
    """Return the fastest exact ``Bar`` constructor for the feed's eight columns (see module)."""
    fields = dataclasses.fields(Bar)
    names = tuple(f.name for f in fields)
    rest = fields[len(_GIVEN) :]
    if (
        names[: len(_GIVEN)] != _GIVEN
        or getattr(Bar, "__slots__", None) != names
        or hasattr(Bar, "__post_init__")
        or any(f.default is dataclasses.MISSING for f in rest)
    ):
        return Bar
    twin = type(
        "_BarSlots",
        (Bar,),
        {
            "__slots__": (),
            "__init__": object.__init__,
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        },
    )
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
