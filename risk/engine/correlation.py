"""Rolling return correlations between symbols, recomputed when returns arrive (not per order).

Returns of different symbols are aligned on their most recent observations: the tracker assumes
every symbol is fed on the same cadence (e.g. once per closed bar). A pair with fewer than
``min_observations`` aligned returns, or with a constant series, has no correlation (``None``),
so checks treat it as uncorrelated rather than guessing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np

from risk.engine.constants import DEFAULT_CORRELATION_MIN_OBSERVATIONS, DEFAULT_CORRELATION_WINDOW
from risk.engine.errors import RiskInputError

_EMPTY: Mapping[str, float] = {}
_FLAT_RTOL = 1e-9


class CorrelationTracker:
    """Keep a rolling window of returns per symbol and a precomputed correlation matrix."""

    def __init__(
        self,
        window: int = DEFAULT_CORRELATION_WINDOW,
        min_observations: int = DEFAULT_CORRELATION_MIN_OBSERVATIONS,
    ) -> None:
        """Create an empty tracker keeping ``window`` returns per symbol."""
        if window < 2 or not 2 <= min_observations <= window:
            raise RiskInputError("need 2 <= min_observations <= window")
        self._window = window
        self._min_obs = min_observations
        self._returns: dict[str, deque[float]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._last_price: dict[str, float] = {}
        self._matrix: dict[str, dict[str, float]] = {}

    def update_return(self, symbol: str, ret: float) -> None:
        """Append one return for ``symbol`` and refresh its correlations."""
        self._append(symbol, ret)
        self._refresh([symbol])

    def update_returns(self, returns: Mapping[str, float]) -> None:
        """Append one return per symbol (one bar for many symbols), refreshing once."""
        for symbol, ret in returns.items():
            self._append(symbol, ret)
        if len({len(series) for series in self._returns.values()}) == 1:
            self._refresh_all()  # the usual case (every symbol fed per bar): one matrix product
        else:
            self._refresh(returns.keys())

    def update_price(self, symbol: str, price: float) -> None:
        """Derive a simple return from the previous price of ``symbol`` and record it."""
        if not math.isfinite(price) or price <= 0:
            raise RiskInputError(f"{symbol}: price must be finite and > 0, got {price}")
        last = self._last_price.get(symbol)
        self._last_price[symbol] = price
        if last is not None:
            self.update_return(symbol, price / last - 1.0)

    def correlation(self, a: str, b: str) -> float | None:
        """Return the correlation of ``a`` and ``b`` returns, or None when unknown."""
        return self._matrix.get(a, _EMPTY).get(b)

    def row(self, symbol: str) -> Mapping[str, float]:
        """Return every known correlation of ``symbol`` with other symbols."""
        return self._matrix.get(symbol, _EMPTY)

    def observations(self, symbol: str) -> int:
        """Return how many returns are held for ``symbol``."""
        series = self._returns.get(symbol)
        return len(series) if series is not None else 0

    def _append(self, symbol: str, ret: float) -> None:
        """Store ``ret`` after validating it."""
        ret = float(ret)
        if not math.isfinite(ret):
            raise RiskInputError(f"{symbol}: return must be finite, got {ret}")
        series = self._returns.get(symbol)
        if series is None:
            series = self._returns[symbol] = deque(maxlen=self._window)
        series.append(ret)
        self._arrays.pop(symbol, None)

    def _array(self, symbol: str) -> np.ndarray:
        """Return the returns of ``symbol`` as a cached array."""
        arr = self._arrays.get(symbol)
        if arr is None:
            arr = self._arrays[symbol] = np.fromiter(self._returns[symbol], dtype=float)
        return arr

    def _refresh(self, symbols: Iterable[str]) -> None:
        """Recompute the matrix rows (and mirrored columns) of ``symbols``."""
        for symbol in symbols:
            for other, corr in self._row_for(symbol).items():
                if corr is None:
                    self._matrix.get(symbol, {}).pop(other, None)
                    self._matrix.get(other, {}).pop(symbol, None)
                else:
                    self._matrix.setdefault(symbol, {})[other] = corr
                    self._matrix.setdefault(other, {})[symbol] = corr

    def _refresh_all(self) -> None:
        """Recompute the whole matrix when every series has the same length."""
        names = list(self._returns)
        self._matrix = {}
        if len(names) < 2 or self.observations(names[0]) < self._min_obs:
            return
        data = np.stack([self._array(name) for name in names])
        centred = data - data.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
        flat = norms <= _FLAT_RTOL * np.abs(data).max(axis=1) * math.sqrt(data.shape[1])
        safe = np.where(flat, 1.0, norms)
        corr = np.clip((centred @ centred.T) / np.outer(safe, safe), -1.0, 1.0).tolist()
        live = [i for i in range(len(names)) if not flat[i]]
        for i in live:
            row = corr[i]
            self._matrix[names[i]] = {names[j]: row[j] for j in live if j != i}

    def _row_for(self, symbol: str) -> dict[str, float | None]:
        """Correlate ``symbol`` with every other symbol, batching pairs of equal overlap."""
        x_all = self._array(symbol)
        groups: dict[int, list[str]] = {}
        for other in self._returns:
            if other != symbol:
                groups.setdefault(min(len(x_all), self.observations(other)), []).append(other)
        row: dict[str, float | None] = {}
        for length, others in groups.items():
            if length < self._min_obs:
                row.update(dict.fromkeys(others, None))
                continue
            stacked = np.stack([self._array(o)[-length:] for o in others])
            row.update(zip(others, _corr_with(x_all[-length:], stacked), strict=True))
        return row


def _corr_with(x: np.ndarray, ys: np.ndarray) -> list[float | None]:
    """Return the Pearson correlation of ``x`` with each row of ``ys`` (None if constant)."""
    xc = x - x.mean()
    yc = ys - ys.mean(axis=1, keepdims=True)
    x_norm = float(np.sqrt(xc @ xc))
    y_norms = np.sqrt(np.einsum("ij,ij->i", yc, yc))
    # Relative tolerance: a constant series leaves rounding residue of ~1e-16 × its scale.
    x_flat = x_norm <= _FLAT_RTOL * _scale(x)
    y_flat = y_norms <= _FLAT_RTOL * np.abs(ys).max(axis=1) * math.sqrt(ys.shape[1])
    out: list[float | None] = []
    for cov, y_norm, flat in zip(yc @ xc, y_norms, y_flat, strict=True):
        if x_flat or flat:
            out.append(None)
        else:
            out.append(max(-1.0, min(1.0, float(cov) / (x_norm * float(y_norm)))))
    return out


def _scale(x: np.ndarray) -> float:
    """Return the magnitude a norm of ``x`` is compared against to call it flat."""
    return float(np.abs(x).max()) * math.sqrt(len(x))
