"""Whole-series versions of ``trading.engine.indicators``, and a memo of them per close series.

Strategies describe their bar decisions for a whole series with these (``Strategy.
decision_table``), which sparse backtests and the vectorised path read. Strategies compare
indicators with ``>``/``<``/``==``, and bar prices with few decimals make exact ties common (a
10-bar and a 30-bar mean can both be 9049.918). So the moving average and the Bollinger mean/σ
here reproduce the incremental classes *bit for bit*: the same floating-point operations in the
same order, evaluated with ``numpy.cumsum`` (a strictly sequential accumulate), restarted from
``math.fsum`` at the same resync points. Wilder's RSI, a nonlinear recurrence, is computed with
``scipy.signal.lfilter``: equal to ~1e-13, and its thresholds are not hit exactly in practice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

# Must stay the resync period of the incremental indicators (tests check bit equality).
from trading.engine.indicators import _RESYNC as RESYNC


def _blocks(size: int, first: int) -> list[tuple[int, int]]:
    """Return [start, stop) ranges from ``first`` that end right after each resync point."""
    out, start = [], first
    while start < size:
        stop = min((start // RESYNC + 1) * RESYNC, size)
        out.append((start, stop))
        start = stop
    return out


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Return ``RollingMean(n)`` over ``x`` (NaN until ``n`` values), bit for bit."""
    x = np.asarray(x, dtype=float)
    size = x.size
    out = np.full(size, np.nan)
    if size == 0:
        return out
    removed = np.zeros(size)
    if size > n:
        removed[n:] = -x[: size - n]
    ops = np.empty(2 * size)
    ops[0::2], ops[1::2] = x, removed  # sum += x, then sum -= the value leaving the window
    sums = np.empty(size)
    for start, stop in _blocks(size, 0):
        begin = 0.0 if start == 0 else math.fsum(x[max(0, start - n) : start])
        run = np.cumsum(np.concatenate([[begin], ops[2 * start : 2 * stop]]))
        sums[start:stop] = run[2::2]
        if stop % RESYNC == 0:
            sums[stop - 1] = math.fsum(x[max(0, stop - n) : stop])
    out[n - 1 :] = sums[n - 1 :] / n
    return out


def rolling_mean_std(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``RollingMeanStd(n)``'s mean and population σ over ``x``, bit for bit."""
    x = np.asarray(x, dtype=float)
    size = x.size
    means, m2s = np.empty(size), np.empty(size)
    mean = m2 = 0.0
    for k in range(min(n, size)):  # Welford while the window fills
        value = float(x[k])
        delta = value - mean
        mean += delta / (k + 1)
        m2 += delta * (value - mean)
        if (k + 1) % RESYNC == 0:
            mean, m2 = _resync(x[max(0, k + 1 - n) : k + 1])
        means[k], m2s[k] = mean, m2
    for start, stop in _blocks(size, n):
        new, old = x[start:stop], x[start - n : stop - n]
        run = np.cumsum(np.concatenate([[mean], (new - old) / n]))
        prev, cur = run[:-1], run[1:]
        means[start:stop] = cur
        m2s[start:stop] = np.cumsum(np.concatenate([[m2], (new - old) * (new - cur + old - prev)]))[
            1:
        ]
        if stop % RESYNC == 0:
            means[stop - 1], m2s[stop - 1] = _resync(x[stop - n : stop])
        mean, m2 = float(means[stop - 1]), float(m2s[stop - 1])
    mean_out, std_out = np.full(size, np.nan), np.full(size, np.nan)
    if size >= n:
        mean_out[n - 1 :] = means[n - 1 :]
        std_out[n - 1 :] = np.sqrt(np.maximum(m2s[n - 1 :], 0.0) / n)
    return mean_out, std_out


def _resync(window: np.ndarray) -> tuple[float, float]:
    mean = math.fsum(window) / window.size
    return mean, math.fsum((v - mean) ** 2 for v in window.tolist())


def wilder_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Return Wilder's RSI of ``close`` (NaN for the first ``n`` bars), as ``WilderRSI``."""
    out = np.full(close.size, np.nan)
    if close.size <= n:
        return out
    change = np.diff(close)
    gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    a = (n - 1) / n
    avg = []
    from scipy.signal import lfilter  # ~1 s to import: only when an RSI is computed

    for series in (gain, loss):
        seed = series[:n].sum() / n
        rest = series[n:]
        tail = lfilter([1 / n], [1, -a], rest, zi=[a * seed])[0] if rest.size else rest
        avg.append(np.concatenate([[seed], tail]))
    total = avg[0] + avg[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, 100.0 * avg[0] / total, 0.0)
    out[n:] = rsi
    return out


class IndicatorCache:
    """Indicators of one close series, memoised by parameters (shared across a sweep)."""

    def __init__(self, close: np.ndarray, columns: dict[str, np.ndarray] | None = None) -> None:
        self.close = np.asarray(close, dtype=float)
        # The other bar columns (ts, open, high, low, volume) when the caller has them: what
        # signal-style strategies (``trading.engine.signal_strategy``) read as a DataFrame.
        self.columns = columns or {}
        self._memo: dict[tuple[Any, ...], Any] = {}

    def _get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = make()
        return value

    def sma(self, n: int) -> np.ndarray:
        """Return the simple moving average (NaN until ``n`` values), as ``RollingMean``."""
        return self._get(("sma", n), lambda: rolling_mean(self.close, n))

    def bands(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the rolling mean and population σ, as ``RollingMeanStd``."""
        return self._get(("bands", n), lambda: rolling_mean_std(self.close, n))

    def floor_after(self) -> np.ndarray:
        """Return the lowest close from each bar to the end (bounds what can still be bought)."""
        return self._get(("floor",), lambda: np.minimum.accumulate(self.close[::-1])[::-1])

    def rsi(self, n: int) -> np.ndarray:
        """Return Wilder's RSI seeded with the mean of the first ``n`` changes (TA-Lib's)."""
        return self._get(("rsi", n), lambda: wilder_rsi(self.close, n))
