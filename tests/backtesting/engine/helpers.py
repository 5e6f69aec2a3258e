"""Builders shared by the backtesting-engine tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import numpy as np
import pandas as pd

from marketdata.engine.events import Bar
from marketdata.engine.simulator import SimulatedMarket

T0 = datetime(2024, 3, 1, tzinfo=UTC)
SYM = "BTC-USD"
D = Decimal


def minute(i: int) -> datetime:
    """Return the start of the ``i``-th one-minute bar after T0."""
    return T0 + timedelta(minutes=i)


def bar(
    i: int, o: float, h: float, lo: float, c: float, v: float = 100.0, symbol: str = SYM
) -> Bar:
    """Build the ``i``-th one-minute bar."""
    return Bar(symbol, "1m", minute(i), o, h, lo, c, v)


def frame(
    rows: Sequence[tuple[float, float, float, float, float]], symbol: str = SYM
) -> pd.DataFrame:
    """Build a bar frame from (open, high, low, close, volume) rows, one minute apart."""
    return pd.DataFrame(
        {
            "ts": [minute(i) for i in range(len(rows))],
            "symbol": symbol,
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
            "volume": [r[4] for r in rows],
        }
    )


def walk_frame(n: int, seed: int = 3, symbol: str = SYM, start: float = 100.0) -> pd.DataFrame:
    """Return a random-walk bar frame whose opens differ from the previous closes."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[start], close[:-1]]) * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    rows = np.round(np.column_stack([open_, high, low, close, rng.uniform(50, 150, n)]), 4)
    return frame([tuple(r) for r in rows.tolist()], symbol)


@cache
def sim_frame(n: int = 3000, symbols: tuple[str, ...] = (SYM,)) -> pd.DataFrame:
    """Return ``n`` one-minute bars per symbol of the simulated market (seeded)."""
    market = SimulatedMarket(list(symbols), seed=11)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return market.history_bars(list(symbols), "1m", start, start + timedelta(minutes=n))
