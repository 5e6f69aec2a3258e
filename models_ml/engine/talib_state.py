"""Incremental replicas of the TA-Lib indicators that have infinite memory.

EMA, MACD, RSI, ATR and ADX are recursive (Wilder / exponential smoothing): their value at a bar
depends on every earlier bar since the series began, so they cannot be recomputed from a bounded
buffer. These classes carry the recursion state forward one bar at a time and reproduce TA-Lib's
C code step by step (same seeding, same operation order, same ``TA_IS_ZERO`` guards, default
compatibility and zero unstable period), so a series fed bar by bar gives the values
``talib.<FUNC>`` gives on the whole array. Each ``update`` returns NaN during the indicator's
warm-up, exactly where TA-Lib leaves NaN.
"""

from __future__ import annotations

import math
from collections import deque

NAN = float("nan")
_TA_EPSILON = 0.00000001  # TA_IS_ZERO in ta_func.h


def ta_is_zero(value: float) -> bool:
    """Return True where TA-Lib's ``TA_IS_ZERO`` macro is true."""
    return -_TA_EPSILON < value < _TA_EPSILON


def true_range(high: float, low: float, prev_close: float) -> float:
    """Return TA-Lib's TRUE_RANGE of a bar given the previous close."""
    out = high - low
    out = max(out, abs(high - prev_close))
    return max(out, abs(low - prev_close))


class TalibEma:
    """EMA seeded with the SMA of its first ``period`` inputs (TA-Lib default compatibility)."""

    __slots__ = ("_k", "_seed", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self._k = 2.0 / (period + 1)
        self._seed: list[float] = []
        self.value = NAN

    def update(self, x: float) -> float:
        """Feed one input and return the EMA (NaN for the first ``period - 1`` inputs)."""
        if len(self._seed) < self.period:
            self._seed.append(x)
            if len(self._seed) == self.period:
                self.value = _sequential_sum(self._seed) / self.period
            return self.value
        self.value = ((x - self.value) * self._k) + self.value
        return self.value


class TalibMacd:
    """MACD line, signal and histogram as ``talib.MACD`` computes them.

    TA-Lib seeds the fast EMA with the mean of the ``fast`` inputs ending where the slow EMA is
    first defined (not with the first ``fast`` inputs), so it is not EMA(fast) - EMA(slow).
    """

    __slots__ = ("_fast", "_fast_k", "_recent", "_signal", "_slow", "fast", "slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if not 0 < fast < slow:
            raise ValueError("MACD needs 0 < fast < slow")
        self.fast, self.slow = fast, slow
        self._slow = TalibEma(slow)
        self._fast_k = 2.0 / (fast + 1)
        self._fast = NAN
        self._recent: deque[float] = deque(maxlen=fast)
        self._signal = TalibEma(signal)

    def update(self, x: float) -> tuple[float, float, float]:
        """Feed one close and return (macd, signal, hist), NaN until the signal is defined."""
        self._recent.append(x)
        slow = self._slow.update(x)
        if math.isnan(slow):
            return NAN, NAN, NAN
        if math.isnan(self._fast):
            self._fast = _sequential_sum(self._recent) / self.fast
        else:
            self._fast = ((x - self._fast) * self._fast_k) + self._fast
        macd = self._fast - slow
        signal = self._signal.update(macd)
        if math.isnan(signal):
            return NAN, NAN, NAN
        return macd, signal, macd - signal


class TalibRsi:
    """Wilder RSI as ``talib.RSI`` computes it."""

    __slots__ = ("_count", "_gain", "_loss", "_prev", "period")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._count = 0
        self._prev = NAN
        self._gain = 0.0
        self._loss = 0.0

    def update(self, x: float) -> float:
        """Feed one close and return the RSI in [0, 100] (NaN for the first ``period`` closes)."""
        n = self.period
        self._count += 1
        diff = x - self._prev
        self._prev = x
        if self._count == 1:
            return NAN
        if self._count > n + 1:
            self._loss *= n - 1
            self._gain *= n - 1
        if diff < 0:
            self._loss -= diff
        else:
            self._gain += diff
        if self._count < n + 1:
            return NAN
        self._loss /= n
        self._gain /= n
        total = self._gain + self._loss
        return 0.0 if ta_is_zero(total) else 100.0 * (self._gain / total)


class TalibAtr:
    """Wilder ATR as ``talib.ATR`` computes it (SMA of the first ``period`` true ranges as seed)."""

    __slots__ = ("_count", "_prev_close", "_seed", "period", "value")

    def __init__(self, period: int = 14) -> None:
        if period < 2:
            raise ValueError("ATR period must be >= 2")
        self.period = period
        self._count = 0
        self._prev_close = NAN
        self._seed: list[float] = []
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        """Feed one bar and return the ATR (NaN for the first ``period`` bars)."""
        self._count += 1
        prev_close, self._prev_close = self._prev_close, close
        if self._count == 1:
            return NAN
        tr = true_range(high, low, prev_close)
        if len(self._seed) < self.period:
            self._seed.append(tr)
            if len(self._seed) == self.period:
                self.value = _sequential_sum(self._seed) / self.period
            return self.value
        value = self.value * (self.period - 1)
        value += tr
        self.value = value / self.period
        return self.value


class TalibAdx:
    """ADX with +DI/-DI as ``talib.ADX``, ``talib.PLUS_DI`` and ``talib.MINUS_DI`` compute them."""

    __slots__ = (
        "_adx",
        "_count",
        "_minus_dm",
        "_plus_dm",
        "_prev",
        "_sum_dx",
        "_tr",
        "minus_di",
        "period",
        "plus_di",
    )

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._count = 0
        self._prev = (NAN, NAN, NAN)
        self._minus_dm = self._plus_dm = self._tr = self._sum_dx = 0.0
        self._adx = NAN
        self.plus_di = self.minus_di = NAN

    def update(self, high: float, low: float, close: float) -> float:
        """Feed one bar and return the ADX (NaN for the first ``2 * period - 1`` bars).

        ``plus_di`` and ``minus_di`` are defined from bar ``period`` on.
        """
        n = self.period
        self._count += 1
        prev_high, prev_low, prev_close = self._prev
        self._prev = (high, low, close)
        if self._count == 1:
            return NAN
        diff_p, diff_m = high - prev_high, prev_low - low
        tr = true_range(high, low, prev_close)
        if self._count <= n:  # plain sums over the first period - 1 moves
            self._add_moves(diff_p, diff_m)
            self._tr += tr
            return NAN
        self._minus_dm -= self._minus_dm / n
        self._plus_dm -= self._plus_dm / n
        self._add_moves(diff_p, diff_m)
        self._tr = self._tr - (self._tr / n) + tr
        dx = self._directional_index()
        if self._count <= 2 * n:  # the first period DX values are averaged into the seed
            self._sum_dx += 0.0 if dx is None else dx
            if self._count < 2 * n:
                return NAN
            self._adx = self._sum_dx / n
        elif dx is not None:
            self._adx = ((self._adx * (n - 1)) + dx) / n
        return self._adx

    def _add_moves(self, diff_p: float, diff_m: float) -> None:
        """Add the directional movement of one bar (TA-Lib's if / else-if rule)."""
        if diff_m > 0 and diff_p < diff_m:
            self._minus_dm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            self._plus_dm += diff_p

    def _directional_index(self) -> float | None:
        """Update +DI/-DI and return DX, or None where TA-Lib skips it (zero range)."""
        if ta_is_zero(self._tr):
            self.plus_di = self.minus_di = 0.0
            return None
        self.minus_di = 100.0 * (self._minus_dm / self._tr)
        self.plus_di = 100.0 * (self._plus_dm / self._tr)
        total = self.minus_di + self.plus_di
        if ta_is_zero(total):
            return None
        return 100.0 * (abs(self.minus_di - self.plus_di) / total)


def _sequential_sum(values: list[float] | deque[float]) -> float:
    """Sum left to right from 0.0, like TA-Lib's accumulation loops (not math.fsum)."""
    total = 0.0
    for v in values:
        total += v
    return total
