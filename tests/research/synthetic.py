"""Synthetic processes with known structure for the research tests (fixed seeds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ar1(n: int, phi: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Return an AR(1) path x_t = phi x_{t-1} + e_t started at 0."""
    out = np.zeros(n)
    shocks = rng.normal(0, sigma, n)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + shocks[t]
    return out


def random_walk_prices(n: int, rng: np.random.Generator, start: float = 100.0) -> np.ndarray:
    """Return a geometric random walk of prices."""
    return start * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def cointegrated_pair(
    n: int, seed: int, *, beta: float = 1.2, phi: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """Return prices (a, b) with log a = 0.5 + beta log b + AR(1) spread: cointegrated."""
    rng = np.random.default_rng(seed)
    b = random_walk_prices(n, rng)
    a = np.exp(0.5 + beta * np.log(b) + ar1(n, phi, 0.01, rng))
    return a, b


def hourly_bars(closes: np.ndarray, symbol: str) -> pd.DataFrame:
    """Return a long bar frame (ts, symbol, OHLCV) with the given closes, one hour apart."""
    ts = [T0 + timedelta(hours=i) for i in range(len(closes))]
    opens = np.concatenate([[closes[0]], closes[:-1]])
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": symbol,
            "open": opens,
            "high": np.maximum(opens, closes) * 1.001,
            "low": np.minimum(opens, closes) * 0.999,
            "close": closes,
            "volume": 1e6,
        }
    )
