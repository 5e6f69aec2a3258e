"""Vectorised historical bars of the simulated market (for backtests and bootstrap data).

Bars are generated in blocks of BLOCK_BARS windows indexed from the Unix epoch, each block from
its own seeded generator, so a given (seed, timeframe, window) is always the same bar whatever
range is asked for. Returns are drawn jointly for all symbols of the market (the correlation
structure must not depend on which symbols a caller selects); per-symbol extras (ranges, volume,
trade counts) come from per-symbol generators, so selecting fewer symbols is cheaper.

Log prices are anchored at the market's start: bars before it walk back from the base prices.
Each timeframe is its own realisation; for consistent multi-timeframe data generate the finest
one and aggregate it with ``aggregator.resample_frame``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from marketdata.engine.aggregator import BAR_COLUMNS, timeframe_seconds
from marketdata.engine.constants import REGIME_VOL_MULTIPLIERS, REGIME_VOLUME_MULTIPLIERS
from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.sim_model import (
    MarketProfile,
    ou_path,
    regime_path,
    round_to,
    stationary_regime,
)

BLOCK_BARS = 4096
_BLOCK_OFFSET = 2**40  # SeedSequence entropy must be non-negative; block indices can be negative
RANGE_SCALE = 0.5  # high/low extend beyond open/close by |N| * RANGE_SCALE * bar sigma
VOLUME_LOG_SIGMA = 0.5


def history_bars(
    profile: MarketProfile,
    symbols: str | Sequence[str] | None,
    timeframe: str,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """Generate bars with window start in [start, end) for symbols, as a long DataFrame."""
    if start.tzinfo is None or end.tzinfo is None:
        raise SimulationConfigError("start and end must be timezone-aware (UTC)")
    secs = timeframe_seconds(timeframe)
    selected = _select(profile, symbols)
    first = math.ceil(start.timestamp() / secs)  # first window starting at or after start
    stop = math.ceil(end.timestamp() / secs)
    if stop <= first:
        return pd.DataFrame({c: [] for c in BAR_COLUMNS})
    rets, regimes = _returns_range(profile, secs, first, stop)
    log_open = _log_level(profile, secs, first)[None, :] + np.vstack(
        [np.zeros(len(profile.specs)), np.cumsum(rets, axis=0)[:-1]]
    )
    if profile.pairs:
        log_open, rets = _planted(profile, secs, first, stop, log_open, rets)
    columns = [
        _symbol_bars(profile, secs, i, first, stop, log_open[:, i], rets[:, i], regimes)
        for i in selected
    ]
    return _frame(profile, secs, first, stop, selected, columns)


def _select(profile: MarketProfile, symbols: str | Sequence[str] | None) -> list[int]:
    """Return model indices of the requested symbols."""
    names = list(profile.names)
    wanted = names if symbols is None else [symbols] if isinstance(symbols, str) else list(symbols)
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise SimulationConfigError(f"symbols not in this market: {unknown}")
    return [names.index(s) for s in wanted]


def _generator(profile: MarketProfile, *key: int) -> np.random.Generator:
    """Return a generator seeded from the market seed and a key."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([profile.seed, *key])))


def _block_returns(profile: MarketProfile, secs: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one block's correlated log returns (BLOCK_BARS x symbols) and regime path."""
    rng = _generator(profile, 2, secs, block + _BLOCK_OFFSET)
    regimes = regime_path(rng, BLOCK_BARS, secs, stationary_regime(rng, secs))
    vol = np.asarray(REGIME_VOL_MULTIPLIERS)[regimes][:, None]
    k = len(profile.specs)
    rets = (rng.standard_normal((BLOCK_BARS, k)) @ profile.chol.T) * profile.sigma(secs) * vol
    jump_at = np.flatnonzero(rng.random(BLOCK_BARS) < profile.jump_probability(secs))
    if jump_at.size:
        common = rng.standard_normal(jump_at.size)[:, None]
        spread = 0.8 + 0.4 * rng.random((jump_at.size, k))
        rets[jump_at] += common * spread * profile.jump_sigma()
    return rets, regimes


def _returns_range(
    profile: MarketProfile, secs: int, first: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return returns and regimes of bar indices [first, stop)."""
    parts, regime_parts = [], []
    for block in range(first // BLOCK_BARS, (stop - 1) // BLOCK_BARS + 1):
        rets, regimes = _block_returns(profile, secs, block)
        lo = max(first - block * BLOCK_BARS, 0)
        hi = min(stop - block * BLOCK_BARS, BLOCK_BARS)
        parts.append(rets[lo:hi])
        regime_parts.append(regimes[lo:hi])
    return np.concatenate(parts), np.concatenate(regime_parts)


def _cumulative(profile: MarketProfile, secs: int, index: int, origin_block: int) -> np.ndarray:
    """Return the summed log return from the origin block's first bar up to bar index."""
    block = index // BLOCK_BARS
    total = np.zeros(len(profile.specs))
    step = 1 if block >= origin_block else -1
    for b in range(origin_block, block, step):
        rets = _block_returns(profile, secs, b if step > 0 else b - 1)[0]
        total += step * rets.sum(axis=0)
    partial = _block_returns(profile, secs, block)[0][: index - block * BLOCK_BARS]
    return total + partial.sum(axis=0)


def _log_level(profile: MarketProfile, secs: int, index: int) -> np.ndarray:
    """Return log open prices of bar index, anchored at base prices at the market's start."""
    anchor = int(profile.anchor.timestamp()) // secs
    origin = anchor // BLOCK_BARS
    base = np.log([s.base_price for s in profile.specs])
    return (
        base
        + _cumulative(profile, secs, index, origin)
        - _cumulative(profile, secs, anchor, origin)
    )


def _planted(
    profile: MarketProfile,
    secs: int,
    first: int,
    stop: int,
    log_open: np.ndarray,
    rets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return log opens and returns with every planted follower rewritten from its leader."""
    path = np.vstack([log_open, log_open[-1] + rets[-1]])  # opens of bars first..stop
    spreads = np.column_stack(
        [_spread_range(profile, secs, idx, first, stop + 1) for idx in range(len(profile.pairs))]
    )
    profile.plant(path, spreads)
    return path[:-1], np.diff(path, axis=0)


def _spread_range(profile: MarketProfile, secs: int, idx: int, first: int, stop: int):
    """Return pair ``idx``'s spread at bar indices [first, stop), block by block."""
    pair = profile.pairs[idx][2]
    decay = pair.decay(secs)
    parts = []
    for block in range(first // BLOCK_BARS, (stop - 1) // BLOCK_BARS + 1):
        # Each block starts from the stationary law, so any window is the same bars.
        rng = _generator(profile, 5, secs, block + _BLOCK_OFFSET, idx)
        start = rng.standard_normal() * pair.spread_sigma
        path = ou_path(rng, BLOCK_BARS, decay, pair.spread_sigma, start)
        lo = max(first - block * BLOCK_BARS, 0)
        parts.append(path[lo : min(stop - block * BLOCK_BARS, BLOCK_BARS)])
    return np.concatenate(parts)


def _symbol_bars(
    profile: MarketProfile,
    secs: int,
    i: int,
    first: int,
    stop: int,
    log_open: np.ndarray,
    rets: np.ndarray,
    regimes: np.ndarray,
) -> dict[str, np.ndarray]:
    """Build one symbol's OHLCV columns from its log path and per-symbol extras."""
    spec = profile.specs[i]
    noise = _symbol_noise(profile, secs, spec.symbol, first, stop)
    bar_sigma = profile.sigma(secs)[i] * np.asarray(REGIME_VOL_MULTIPLIERS)[regimes]
    open_ = np.exp(log_open)
    close = np.exp(log_open + rets)
    high = np.maximum(open_, close) * np.exp(noise[0] * RANGE_SCALE * bar_sigma)
    low = np.minimum(open_, close) * np.exp(-noise[1] * RANGE_SCALE * bar_sigma)
    tick = spec.tick_size
    open_, high, low, close = (round_to(a, tick) for a in (open_, high, low, close))
    low = np.maximum(low, tick)  # a collapse must not print a zero or negative price
    regime_volume = np.asarray(REGIME_VOLUME_MULTIPLIERS)[regimes]
    activity = 0.7 + 0.3 * np.abs(rets) / bar_sigma
    volume = spec.daily_volume * secs / 86_400.0 * regime_volume * activity * noise[2]
    # Normal approximation of Poisson(lam) counts keeps the draws independent of lam.
    lam = profile.trades_per_step * secs / profile.step_seconds * regime_volume * activity
    counts = np.maximum(np.round(lam + np.sqrt(lam) * noise[3]), 1.0).astype(np.int64)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": np.maximum(round_to(volume, spec.lot_size), spec.lot_size),
        # Rounding is monotonic, so the rounded mean of OHLC stays inside [low, high].
        "vwap": round_to((open_ + high + low + close) / 4.0, tick),
        "trade_count": counts,
    }


def _symbol_noise(
    profile: MarketProfile, secs: int, symbol: str, first: int, stop: int
) -> list[np.ndarray]:
    """Draw per-symbol extras for bars [first, stop): |N| high, |N| low, volume, count noise."""
    key = zlib.crc32(symbol.encode())
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for block in range(first // BLOCK_BARS, (stop - 1) // BLOCK_BARS + 1):
        rng = _generator(profile, 3, secs, block + _BLOCK_OFFSET, key)
        ranges = np.abs(rng.standard_normal((2, BLOCK_BARS)))
        volume_z = rng.standard_normal(BLOCK_BARS)
        volume = np.exp(VOLUME_LOG_SIGMA * volume_z - VOLUME_LOG_SIGMA**2 / 2)
        count_noise = rng.standard_normal(BLOCK_BARS)
        lo = max(first - block * BLOCK_BARS, 0)
        hi = min(stop - block * BLOCK_BARS, BLOCK_BARS)
        for store, values in zip(parts, (ranges[0], ranges[1], volume, count_noise), strict=True):
            store.append(values[lo:hi])
    return [np.concatenate(p) for p in parts]


def _frame(
    profile: MarketProfile,
    secs: int,
    first: int,
    stop: int,
    selected: list[int],
    columns: list[dict[str, np.ndarray]],
) -> pd.DataFrame:
    """Assemble per-symbol columns into one long frame sorted by ts then symbol."""
    n, k = stop - first, len(selected)
    ts = pd.to_datetime(np.arange(first, stop, dtype=np.int64) * secs, unit="s", utc=True)
    data: dict[str, object] = {
        "ts": ts.repeat(k),
        "symbol": np.tile(np.array([profile.specs[i].symbol for i in selected], dtype=object), n),
    }
    for name in ("open", "high", "low", "close", "volume", "vwap", "trade_count"):
        data[name] = np.column_stack([c[name] for c in columns]).ravel()
    return pd.DataFrame(data, columns=BAR_COLUMNS)
