"""Look-ahead bias detection by truncation.

A strategy is causal if what it decided up to time t does not change when the data after t is
removed. The check runs it on the full data once and on data truncated at N random points
(seeded), and compares every order it sent up to each cut (time, symbol, side, quantity, type,
prices, signal). A strategy that peeks ahead — e.g. one that precomputes indicators over the
whole frame it is given, or shifts a series backwards — decides differently near the cut and is
reported by name with the first difference. ``check_signal_lookahead`` does the same for plain
signal functions (frame in, series out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.runner import BacktestConfig, BarData, prepare_bars, run_backtest
from marketdata.engine.events import TIMEFRAME_SECONDS
from trading.engine.orders import Order
from trading.engine.strategy import Strategy

StrategyFactory = Callable[[pd.DataFrame], Strategy]
"""Builds a fresh strategy for a run; receives the bars that run will replay."""
SignalFunction = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first decision that differs between the truncated and the full run."""

    cut: datetime  # end of the last bar the truncated run saw
    position: int  # index of the differing decision
    full: Any  # the decision on full data (None: there was none)
    truncated: Any  # the decision on truncated data (None: there was none)


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """Outcome of a look-ahead check of one strategy or signal."""

    name: str
    cuts: tuple[datetime, ...]
    divergences: tuple[Divergence, ...]

    @property
    def ok(self) -> bool:
        """Return True if no truncation changed a past decision."""
        return not self.divergences

    def message(self) -> str:
        """Return a one-line verdict naming the strategy."""
        if self.ok:
            return f"{self.name}: no look-ahead found at {len(self.cuts)} truncation points"
        first = self.divergences[0]
        return (
            f"{self.name} peeks ahead: truncated at {first.cut.isoformat()} it decided "
            f"{first.truncated!r} where the full run decided {first.full!r} "
            f"({len(self.divergences)} of {len(self.cuts)} cuts differ)"
        )


def _cut_indices(n: int, n_points: int, seed: int, min_index: int | None) -> list[int]:
    """Return sorted distinct indices of the last timestamp kept, before the last one."""
    low = max(1, n // 10 if min_index is None else min_index)
    if n_points < 1 or low >= n - 1:
        raise BacktestConfigError("need n_points >= 1 and more bars than the warm-up")
    rng = np.random.default_rng(seed)
    pool = np.arange(low, n - 1)
    picks = rng.choice(pool, size=min(n_points, pool.size), replace=False)
    return sorted(int(i) for i in picks)


def _decision(order: Order) -> tuple[Any, ...]:
    return (
        order.created_ts,
        order.symbol,
        order.side.value,
        order.quantity,
        order.type.value,
        order.price,
        order.stop_price,
        order.signal,
    )


def _decisions(result_orders: Sequence[Order], until: datetime) -> list[tuple[Any, ...]]:
    out = [
        _decision(o) for o in result_orders if o.created_ts is not None and o.created_ts <= until
    ]
    out.sort(key=lambda d: (d[0], d[1]))
    return out


def _first_difference(full: list[Any], part: list[Any]) -> tuple[int, Any, Any] | None:
    for i in range(max(len(full), len(part))):
        a = full[i] if i < len(full) else None
        b = part[i] if i < len(part) else None
        if a != b:
            return i, a, b
    return None


def check_strategy_lookahead(
    factory: StrategyFactory,
    bars: pd.DataFrame | BarData,
    config: BacktestConfig | None = None,
    *,
    n_points: int = 5,
    seed: int = 0,
    name: str | None = None,
    min_index: int | None = None,
) -> LookaheadReport:
    """Compare a strategy's orders on full and truncated data at ``n_points`` random cuts."""
    cfg = config or BacktestConfig()
    data = bars if isinstance(bars, BarData) else prepare_bars(bars, cfg.timeframe)
    stamps = data.stamps()
    bar = timedelta(seconds=TIMEFRAME_SECONDS[data.timeframe])
    full_strategy = factory(data.to_frame())
    label = name or type(full_strategy).__name__
    full_orders = run_backtest(full_strategy, data, cfg).orders
    cuts, divergences = [], []
    for index in _cut_indices(stamps.size, n_points, seed, min_index):
        stop = int(np.searchsorted(data.ts, stamps[index], side="right"))
        part = data.slice(0, stop)
        cut = pd.Timestamp(int(stamps[index]), tz="UTC").to_pydatetime() + bar
        cuts.append(cut)
        part_orders = run_backtest(factory(part.to_frame()), part, cfg).orders
        diff = _first_difference(_decisions(full_orders, cut), _decisions(part_orders, cut))
        if diff is not None:
            divergences.append(Divergence(cut, *diff))
    return LookaheadReport(label, tuple(cuts), tuple(divergences))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def check_signal_lookahead(
    signal: SignalFunction,
    frame: pd.DataFrame,
    *,
    n_points: int = 5,
    seed: int = 0,
    name: str | None = None,
    min_index: int | None = None,
) -> LookaheadReport:
    """Compare a signal function's values on full and truncated frames (row-wise)."""
    label = name or getattr(signal, "__name__", "signal")
    full = pd.Series(signal(frame)).reset_index(drop=True)
    cuts, divergences = [], []
    index_ts = frame["ts"] if "ts" in frame.columns else frame.index.to_series()
    for index in _cut_indices(len(frame), n_points, seed, min_index):
        cut = pd.Timestamp(index_ts.iloc[index]).to_pydatetime()
        cuts.append(cut)
        part = pd.Series(signal(frame.iloc[: index + 1])).reset_index(drop=True)
        for i in range(index + 1):
            a, b = full.iloc[i], part.iloc[i] if i < len(part) else None
            if not _same(a, b):
                divergences.append(Divergence(cut, i, a, b))
                break
    return LookaheadReport(label, tuple(cuts), tuple(divergences))


def check_signal_recursive(
    strategy: Any,
    frame: pd.DataFrame,
    *,
    n_points: int = 5,
    seed: int = 0,
    window: int | None = None,
    min_index: int | None = None,
) -> LookaheadReport:
    """Freqtrade's recursive check of a signal-style strategy (``SignalStrategy``).

    Its functions run once on the whole frame; then, at ``n_points`` random rows ``k``, on the
    ``window`` bars ending at ``k`` alone (default its ``live_window``: what live trading gives
    it), renumbered from 0. Every column of the last row must equal the whole-frame row ``k``
    (NaN equal to NaN, floats to ~1e-9). That catches ``shift(-1)``, centred windows, a window
    too short for the longest lookback, and code that reads data outside the frame it is given
    (positions in a series it loaded itself no longer line up with the renumbered rows).
    """
    one = frame.loc[frame["symbol"] == frame["symbol"].iloc[0]] if "symbol" in frame else frame
    one = one.drop(columns=[c for c in ("symbol",) if c in one]).reset_index(drop=True)
    columns = [c for c in ("ts", "open", "high", "low", "close", "volume") if c in one]
    one = one[columns]
    length = int(window or getattr(strategy, "live_window", 500))
    full = strategy.signals(one.copy(), " (recursive check, whole frame)")
    label = getattr(strategy, "name", type(strategy).__name__)
    low = max(min_index or 0, 1)
    if len(one) - 1 > length:
        # Rows before the window's length are recomputed on every bar from the first, numbered
        # as in the whole frame: positions read in a series of the strategy's own line up there
        # and a too-short window cannot show. Cut where the window starts after the first bar.
        low = max(low, length)
    cuts, divergences = [], []
    for k in _cut_indices(len(one), n_points, seed, low):
        start = max(0, k + 1 - length)
        part = strategy.signals(one.iloc[start : k + 1].reset_index(drop=True).copy())
        cut = pd.Timestamp(one["ts"].iloc[k]).to_pydatetime() if "ts" in one else k
        cuts.append(cut)
        for column in full.columns:
            if column not in part:
                divergences.append(Divergence(cut, k, column, "missing"))
                break
            a, b = full[column].iloc[k], part[column].iloc[-1]
            if not _same(_plain(a), _plain(b)):
                divergences.append(Divergence(cut, k, (column, _plain(a)), (column, _plain(b))))
                break
    return LookaheadReport(label, tuple(cuts), tuple(divergences))


def _plain(value: Any) -> Any:
    """Return numpy scalars and booleans as floats (so 1 == True == 1.0); other values as is."""
    if isinstance(value, bool | np.bool_ | int | np.integer | float | np.floating):
        return float(value)
    return value
