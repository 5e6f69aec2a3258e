"""Bar-by-bar features equal to ``FeatureSet.compute`` on the same stream (see features.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from marketdata.engine.events import Bar
from models_ml.engine.errors import FeatureError, StaleBarError
from models_ml.engine.features import (
    FORWARD_FILLED,
    OHLCV,
    FeatureSet,
    RecursiveState,
    check_talib_defaults,
    recursive_features,
    window_features,
)
from models_ml.engine.talib_state import TalibAdx, TalibAtr, TalibEma, TalibMacd, TalibRsi

BarLike = Bar | Mapping[str, Any]


class RingBuffer:
    """The last ``capacity`` rows of a few float columns, each column readable as one array.

    Every row is written twice (at i and i + capacity) so the latest ``capacity`` rows of a
    column are always one contiguous slice: no copy and no roll per update.
    """

    __slots__ = ("_data", "_next", "capacity", "size")

    def __init__(self, capacity: int, n_columns: int) -> None:
        self.capacity = capacity
        self._data = np.zeros((n_columns, 2 * capacity))
        self._next = 0
        self.size = 0

    def push(self, row: np.ndarray) -> None:
        """Append one row, evicting the oldest when full."""
        i = self._next
        self._data[:, i] = row
        self._data[:, i + self.capacity] = row
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def column(self, j: int) -> np.ndarray:
        """Return column j's retained values, oldest first (a view)."""
        start = self._next if self.size == self.capacity else 0
        return self._data[j, start : start + self.size]


class _RecursiveIndicators:
    """The TA-Lib replicas the infinite-memory features need, advanced together."""

    __slots__ = ("adx", "atr", "emas", "macd", "rsi")

    def __init__(self, fs: FeatureSet) -> None:
        cfg = fs.config
        self.rsi = TalibRsi(cfg.rsi_period)
        self.macd = TalibMacd(cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
        self.atr = TalibAtr(cfg.atr_period)
        self.emas = tuple(TalibEma(n) for n in cfg.ma_lengths)
        self.adx = TalibAdx(cfg.adx_period)

    def update(self, high: float, low: float, close: float) -> RecursiveState:
        """Advance every indicator by one bar and return their raw values."""
        macd, signal, hist = self.macd.update(close)
        return RecursiveState(
            rsi=self.rsi.update(close),
            macd=macd,
            macd_signal=signal,
            macd_hist=hist,
            atr=self.atr.update(high, low, close),
            emas=tuple(e.update(close) for e in self.emas),
            adx=self.adx.update(high, low, close),
            plus_di=self.adx.plus_di,
            minus_di=self.adx.minus_di,
        )


class OnlineFeatures:
    """Incremental features for one symbol: feed bars in time order with ``update``."""

    __slots__ = ("_buffer", "_columns", "_fill", "_fs", "_recursive", "count", "last_ts")

    def __init__(self, fs: FeatureSet) -> None:
        check_talib_defaults()
        self._fs = fs
        self._columns = fs.layout.input_columns
        self._buffer = RingBuffer(fs.layout.window_lookback + 1, len(self._columns))
        self._recursive = _RecursiveIndicators(fs)
        self._fill = [c in FORWARD_FILLED for c in self._columns]
        self.count = 0
        self.last_ts: datetime | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature names, in the order of ``update_array`` values."""
        return self._fs.names

    @property
    def ready(self) -> bool:
        """Return True once warm-up is over (the last update returned features)."""
        return self.count > self._fs.warmup

    def update(self, bar: BarLike) -> dict[str, float] | None:
        """Add one bar; return its features by name, or None during warm-up."""
        row = self.update_array(bar)
        return None if row is None else dict(zip(self.names, row.tolist(), strict=True))

    def update_array(self, bar: BarLike) -> np.ndarray | None:
        """Add one bar; return its feature vector (``names`` order), or None during warm-up."""
        ts, values = self._parse(bar)
        if ts is not None and self.last_ts is not None and ts <= self.last_ts:
            raise StaleBarError(f"bar at {ts} is not after the last bar at {self.last_ts}")
        self._forward_fill(values)
        high, low, close = values[1], values[2], values[3]
        state = self._recursive.update(high, low, close)
        self._buffer.push(values)
        self.count += 1
        self.last_ts = ts if ts is not None else self.last_ts
        if not self.ready:
            return None
        arrays = {c: self._buffer.column(j) for j, c in enumerate(self._columns)}
        window = window_features(self._fs.config, self._fs.extras, arrays)
        latest = {name: series[-1] for name, series in window.items()}
        latest.update(recursive_features(self._fs.config, close, state))
        return np.array([latest[name] for name in self.names], dtype=float)

    def _parse(self, bar: BarLike) -> tuple[datetime | None, np.ndarray]:
        """Return (ts, input values in column order) from a Bar or a mapping/Series row."""
        if isinstance(bar, Bar):
            ts: Any = bar.ts
            raw = [getattr(bar, c, None) for c in self._columns]
        else:
            ts = bar.get("ts", getattr(bar, "name", None))
            raw = [bar.get(c) for c in self._columns]
        if any(v is None for v in raw[:5]):
            raise FeatureError(f"bar lacks one of {', '.join(OHLCV)}")
        values = np.array([math.nan if v is None else float(v) for v in raw])
        prices, volume = values[:4], values[4]
        if not (np.isfinite(prices).all() and (prices > 0).all() and math.isfinite(volume)):
            raise FeatureError(f"bad bar values at {ts}: {values[:5].tolist()}")
        if volume < 0:
            raise FeatureError(f"negative volume at {ts}")
        return (ts if isinstance(ts, datetime) else None), values

    def _forward_fill(self, values: np.ndarray) -> None:
        """Replace a missing quote/book/sentiment input by its last known value."""
        if self._buffer.size == 0:
            return
        for j, fill in enumerate(self._fill):
            if fill and math.isnan(values[j]):
                values[j] = self._buffer.column(j)[-1]
