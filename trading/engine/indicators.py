"""Incremental indicators for strategies: O(1) per update, using only values seen so far.

Indicator inputs are market-data floats (signals, not money). Rolling sums are recomputed from
the window every ``_RESYNC`` updates so float drift stays bounded over millions of bars at an
amortised O(1) cost.
"""

from __future__ import annotations

import math
from collections import deque

_RESYNC = 4096


class RollingMean:
    """Simple moving average over the last ``period`` values."""

    __slots__ = ("_count", "_sum", "_window", "period")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._count = 0

    @property
    def ready(self) -> bool:
        """Return True once the window is full."""
        return len(self._window) == self.period

    @property
    def value(self) -> float | None:
        """Return the current mean, or None until the window is full."""
        return self._sum / self.period if self.ready else None

    def update(self, x: float) -> float | None:
        """Add ``x`` and return the mean (None until ``period`` values were seen)."""
        window = self._window
        window.append(x)
        self._sum += x
        if len(window) > self.period:
            self._sum -= window.popleft()
        self._count += 1
        if self._count % _RESYNC == 0:
            self._sum = math.fsum(window)
        return self._sum / self.period if len(window) == self.period else None


class RollingMeanStd:
    """Moving average and population standard deviation over ``period`` values."""

    __slots__ = ("_count", "_m2", "_mean", "_window", "period")

    def __init__(self, period: int) -> None:
        if period < 2:
            raise ValueError("period must be >= 2")
        self.period = period
        self._window: deque[float] = deque()
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean
        self._count = 0

    def update(self, x: float) -> tuple[float, float] | None:
        """Add ``x`` and return ``(mean, std)`` once the window is full."""
        window = self._window
        window.append(x)
        n = len(window)
        if n <= self.period:
            # Welford while filling up.
            delta = x - self._mean
            self._mean += delta / n
            self._m2 += delta * (x - self._mean)
        else:
            old = window.popleft()
            # Sliding update that avoids the E[x²] − E[x]² cancellation at high price levels.
            mean = self._mean + (x - old) / self.period
            self._m2 += (x - old) * (x - mean + old - self._mean)
            self._mean = mean
        self._count += 1
        if self._count % _RESYNC == 0:
            self._resync()
        if len(window) < self.period:
            return None
        return self._mean, math.sqrt(max(self._m2, 0.0) / self.period)

    def _resync(self) -> None:
        n = len(self._window)
        self._mean = math.fsum(self._window) / n
        self._m2 = math.fsum((v - self._mean) ** 2 for v in self._window)


class WilderRSI:
    """Relative Strength Index with Wilder smoothing (matches TA-Lib's RSI)."""

    __slots__ = ("_avg_gain", "_avg_loss", "_prev", "_seen", "period")

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._prev: float | None = None
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self._seen = 0  # price changes seen

    def update(self, x: float) -> float | None:
        """Add a close and return the RSI (None for the first ``period`` changes)."""
        prev = self._prev
        self._prev = x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        self._seen += 1
        n = self.period
        if self._seen <= n:
            # Seed with the simple average of the first ``period`` changes.
            self._avg_gain += gain
            self._avg_loss += loss
            if self._seen < n:
                return None
            self._avg_gain /= n
            self._avg_loss /= n
        else:
            self._avg_gain = (self._avg_gain * (n - 1) + gain) / n
            self._avg_loss = (self._avg_loss * (n - 1) + loss) / n
        total = self._avg_gain + self._avg_loss
        # TA-Lib reports 0 when nothing moved over the window.
        return 100.0 * self._avg_gain / total if total > 0 else 0.0
