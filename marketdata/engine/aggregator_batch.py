"""Bulk aggregation of a time-ordered run of trades, equal to ``BarAggregator.add`` one by one.

``BarAggregator.add_batch`` comes here only for a run in time order that starts no earlier than
the open windows, so no trade is late and every window's open is its first trade and its close
its last. The run is cut into windows; per (window, symbol), high and low are a max and a min
(order-free), volume and price x size are summed sequentially in arrival order from the values
the scalar code starts with, exactly as ``_OpenBar.add`` does. The accumulators are then the
scalar code's own ``_OpenBar`` objects, closed by the aggregator's own ``_close_open`` at each
window change, so emitted bars, amend history and counters are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from marketdata.engine.aggregator import Bar, BarAggregator, _OpenBar

if TYPE_CHECKING:
    from marketdata.engine.trade_batch import TradeColumns

SMALL_GROUP = 64  # groups up to this size are summed together in one padded array


def batch_windows(
    agg: BarAggregator, columns: TradeColumns, positions: Sequence[int]
) -> dict[int, list[Bar]]:
    """Fold the run in; return the bars each trade closed, by position."""
    pos = np.asarray(positions, dtype=np.intp)
    chosen = pos.tolist()
    epoch, price, size = columns.epoch[pos], columns.price[pos], columns.size[pos]
    start = np.floor_divide(epoch, agg.seconds) * agg.seconds  # as ``ts // secs * secs``
    # The run's first window may be the open one: its accumulators are extended, not replaced.
    extend = dict(agg._open) if float(start[0]) == agg._current else {}
    names = columns.names
    window = np.concatenate(([0], np.cumsum(start[1:] != start[:-1])))
    key = window * len(names) + columns.code[pos]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    bounds = np.flatnonzero(np.concatenate(([True], sorted_key[1:] != sorted_key[:-1], [True])))
    heads, count = bounds[:-1], np.diff(bounds)
    group_names = [names[c] for c in (sorted_key[heads] % len(names)).tolist()]
    continued = [
        extend.get(n) if w == 0 else None
        for n, w in zip(group_names, (sorted_key[heads] // len(names)).tolist(), strict=True)
    ]
    stats = {
        "high": np.maximum.reduceat(price[order], heads).tolist(),
        "low": np.minimum.reduceat(price[order], heads).tolist(),
        "volume": _sequential_sums(size[order], heads, count, _init(continued, "volume")),
        "pv": _sequential_sums((price * size)[order], heads, count, _init(continued, "pv")),
        "count": count.tolist(),
        "last": order[bounds[1:] - 1].tolist(),
    }
    first = order[heads]
    out: dict[int, list[Bar]] = {}
    current = 0 if extend else -1
    for g in np.argsort(first, kind="stable").tolist():  # windows in order, symbols as seen
        i = int(first[g])
        if window[i] != current:
            current = window[i]
            _advance(agg, float(start[i]), chosen[i], out)
        acc = continued[g]
        if acc is None:
            venue = agg.venue or columns.trades[chosen[i]].venue
            acc = _OpenBar(float(start[i]), float(start[i]) + agg.seconds, 0.0, 0.0, 0.0, venue)
            acc.open, acc.first_ts, acc.count = float(price[i]), float(epoch[i]), 0
            acc.high, acc.low = stats["high"][g], stats["low"][g]
            agg._open[group_names[g]] = acc
        else:
            acc.high = max(acc.high, stats["high"][g])
            acc.low = min(acc.low, stats["low"][g])
        last = stats["last"][g]
        acc.close, acc.last_ts = float(price[last]), float(epoch[last])
        acc.volume, acc.pv = float(stats["volume"][g]), float(stats["pv"][g])
        acc.count += stats["count"][g]
    return out


def _init(continued: list[_OpenBar | None], field: str) -> np.ndarray:
    """Return each group's starting sum: its open accumulator's, else 0.0 (x + 0.0 is exact)."""
    return np.array([0.0 if acc is None else getattr(acc, field) for acc in continued])


def _advance(agg: BarAggregator, start: float, position: int, out: dict[int, list[Bar]]) -> None:
    """Close the open window as the trade opening the next one does in ``_add_slow``."""
    bars = agg._close_open()
    if bars:
        out[position] = bars
    agg._current = start


def _sequential_sums(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray, init: np.ndarray
) -> np.ndarray:
    """Return init[g] + values of group g added one at a time, left to right, for every group.

    Small groups are laid out as columns of one zero-padded array and accumulated down the rows
    (``np.add.accumulate`` is strictly sequential; adding 0.0 to a positive sum is exact);
    larger ones are accumulated one by one. ``np.add.reduceat`` would sum pairwise instead.
    """
    out = np.array(init, dtype=float)
    small = counts <= SMALL_GROUP
    if small.any():
        groups = np.flatnonzero(small)
        member = np.repeat(np.arange(len(counts)), counts)
        row = np.arange(len(values)) - np.repeat(starts, counts)
        column = np.full(len(counts), -1)
        column[groups] = np.arange(len(groups))
        keep = small[member]
        grid = np.zeros((int(counts[groups].max()) + 1, len(groups)))
        grid[0] = out[groups]
        grid[row[keep] + 1, column[member[keep]]] = values[keep]
        out[groups] = np.add.accumulate(grid, axis=0)[-1]
    for g in np.flatnonzero(~small).tolist():
        segment = values[starts[g] : starts[g] + counts[g]]
        out[g] = np.add.accumulate(np.concatenate(([out[g]], segment)))[-1]
    return out
