"""Synthetic bar generators for the ML engine tests (seeded, no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SIGMA = 0.002


def bars_from_returns(
    returns: np.ndarray, rng: np.random.Generator, start_price: float = 30_000.0
) -> pd.DataFrame:
    """Return an OHLCV frame (1m, UTC) whose closes follow the given log returns."""
    n = len(returns)
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.r_[start_price, close[:-1]]
    wick = np.abs(rng.normal(0.0, 0.5 * SIGMA, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    volume = rng.lognormal(3.0, 0.5, n)
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def random_walk_bars(n: int, seed: int) -> pd.DataFrame:
    """Return bars of a driftless Gaussian random walk (nothing to learn)."""
    rng = np.random.default_rng(seed)
    return bars_from_returns(rng.normal(0.0, SIGMA, n), rng)


def planted_bars(n: int, seed: int, strength: float = 0.6) -> pd.DataFrame:
    """Return bars whose next return's sign follows sign(r_t * r_{t-1}) (an XOR of two signs).

    r_{t+1} = SIGMA * (strength * sign(r_t * r_{t-1}) + N(0, 1)). Neither the previous return's
    sign nor a linear model of lagged returns predicts it (E[sign(r_{t+1}) sign(r_t)] = 0); a
    network has to combine two lags non-linearly.
    """
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, n)
    r = np.empty(n)
    r[:2] = SIGMA * noise[:2]
    for t in range(2, n):
        r[t] = SIGMA * (strength * np.sign(r[t - 1] * r[t - 2]) + noise[t])
    return bars_from_returns(r, rng)


def with_extras(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Return df plus vwap, quote, book, trade-flow, sparse sentiment and on-chain columns."""
    rng = np.random.default_rng(seed)
    n = len(df)
    out = df.copy()
    c = out["close"].to_numpy()
    out["vwap"] = (out["high"] + out["low"] + out["close"]) / 3.0
    half = c * rng.uniform(0.5e-4, 2.5e-4, n)
    out["bid"], out["ask"] = c - half, c + half
    out["bid_size"], out["ask_size"] = rng.uniform(0, 5, n), rng.uniform(0, 5, n)
    buy = out["volume"].to_numpy() * rng.uniform(0, 1, n)
    out["buy_volume"], out["sell_volume"] = buy, out["volume"].to_numpy() - buy
    sentiment = np.tanh(np.cumsum(rng.normal(0, 0.05, n)))
    sentiment[rng.uniform(size=n) < 0.7] = np.nan  # sparse readings, forward-filled by features
    out["sentiment"] = sentiment
    # On-chain intervals are longer than bars: a new value every ~12 bars, forward-filled.
    fresh = rng.uniform(size=n) < 1 / 12
    fresh[0] = True
    tx = np.where(fresh, rng.poisson(1200, n).astype(float), np.nan)
    onchain_volume = np.where(fresh, rng.lognormal(8, 0.5, n), np.nan)
    out["onchain_tx_count"], out["onchain_volume"] = tx, onchain_volume
    out["onchain_netflow"] = onchain_volume * rng.uniform(-0.2, 0.2, n)
    return out


def windowed_data(bars: pd.DataFrame, window: int = 16, horizon: int = 1):
    """Return WindowedData of the default feature set over ``bars``."""
    from models_ml.engine.datasets import build_windowed
    from models_ml.engine.features import FeatureSet

    features = FeatureSet().compute(bars)
    return build_windowed(features, bars["close"].to_numpy(), window, horizon)
