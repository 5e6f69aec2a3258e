"""Chart and candlestick pattern detectors and their forward returns against random bars.

Every event is dated at the bar where the pattern is *known*: a swing point needs ``order``
later bars to be confirmed, so patterns built from swings fire ``order`` bars after the
extreme. Forward returns run from that bar's close, so no detector sees the future.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import talib
from scipy import stats
from scipy.signal import argrelextrema

from research.engine.errors import ResearchInputError

Detector = Callable[[pd.DataFrame], np.ndarray]


def _swings(values: np.ndarray, order: int, compare) -> np.ndarray:
    """Return swing points; a flat extreme (several equal bars) counts once, at its start."""
    kept: list[int] = []
    for i in argrelextrema(values, compare, order=order)[0]:
        if not kept or i - kept[-1] > order:
            kept.append(int(i))
    return np.array(kept, dtype=int)


def _mask(n: int, idx: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[[i for i in idx if i < n]] = True
    return out


def double_top(bars: pd.DataFrame, *, order: int = 5, tol: float = 0.01, depth: float = 0.02):
    """Mark bars where a second swing high within ``tol`` of the first is confirmed."""
    return _double(bars["high"].to_numpy(), bars["low"].to_numpy(), order, tol, depth, top=True)


def double_bottom(bars: pd.DataFrame, *, order: int = 5, tol: float = 0.01, depth: float = 0.02):
    """Mark bars where a second swing low within ``tol`` of the first is confirmed."""
    return _double(bars["low"].to_numpy(), bars["high"].to_numpy(), order, tol, depth, top=False)


def _double(ext, other, order, tol, depth, *, top: bool) -> np.ndarray:
    peaks = _swings(ext, order, np.greater_equal if top else np.less_equal)
    sign = 1.0 if top else -1.0
    hits = []
    for first, second in zip(peaks, peaks[1:], strict=False):
        if second - first <= order:
            continue
        level = (ext[first] + ext[second]) / 2
        between = other[first:second].min() if top else other[first:second].max()
        similar = abs(ext[first] - ext[second]) <= tol * level
        deep = sign * (level - between) >= depth * level
        if similar and deep:
            hits.append(second + order)
    return _mask(len(ext), hits)


def head_and_shoulders(bars: pd.DataFrame, *, order: int = 5, tol: float = 0.015):
    """Mark bars confirming a right shoulder: three swing highs, the middle one highest."""
    high = bars["high"].to_numpy()
    peaks = _swings(high, order, np.greater_equal)
    hits = []
    for left, head, right in zip(peaks, peaks[1:], peaks[2:], strict=False):
        shoulders = (high[left] + high[right]) / 2
        level = abs(high[left] - high[right]) <= tol * shoulders
        if level and high[head] > shoulders * (1 + tol):
            hits.append(right + order)
    return _mask(len(high), hits)


def breakout(bars: pd.DataFrame, *, lookback: int = 20) -> np.ndarray:
    """Mark the first close above the highest high of the previous ``lookback`` bars."""
    ceiling = bars["high"].rolling(lookback).max().shift(1)
    above = (bars["close"] > ceiling).to_numpy()
    return above & ~np.concatenate([[False], above[:-1]])


def volatility_squeeze(bars: pd.DataFrame, *, period: int = 20, lookback: int = 120, q=0.05):
    """Mark the bars where Bollinger bandwidth enters its bottom ``q`` quantile of the past."""
    close = bars["close"]
    width = close.rolling(period).std() / close.rolling(period).mean()
    floor = width.rolling(lookback).quantile(q).shift(1)
    inside = (width <= floor).to_numpy()
    return inside & ~np.concatenate([[False], inside[:-1]])


CHART_PATTERNS: dict[str, Detector] = {
    "double_top": double_top,
    "double_bottom": double_bottom,
    "head_and_shoulders": head_and_shoulders,
    "breakout": breakout,
    "volatility_squeeze": volatility_squeeze,
}


def candlestick_names() -> list[str]:
    """Return TA-Lib's candlestick pattern functions (CDL...)."""
    return sorted(talib.get_function_groups()["Pattern Recognition"])


def candlestick(bars: pd.DataFrame, name: str) -> np.ndarray:
    """Return TA-Lib's signal for one candlestick pattern: +1 bullish, -1 bearish, 0 none."""
    if name not in candlestick_names():
        raise ResearchInputError(f"unknown candlestick pattern {name!r}")
    fn = getattr(talib, name)
    cols = [bars[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")]
    return np.sign(fn(*cols)).astype(int)


@dataclass(frozen=True, slots=True)
class PatternStat:
    """Forward returns after a pattern at one horizon against random bars."""

    pattern: str
    horizon: int
    events: int
    mean: float
    baseline_mean: float
    statistic: float
    p_value: float


def forward_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """Return log(close[t + horizon] / close[t]) (NaN where the future is past the data)."""
    c = np.log(np.asarray(close, dtype=float))
    out = np.full(c.size, np.nan)
    out[: c.size - horizon] = c[horizon:] - c[: c.size - horizon]
    return out


def pattern_vs_random(
    name: str, events: np.ndarray, close: np.ndarray, horizons: list[int], *, seed: int = 0
) -> list[PatternStat]:
    """Compare forward returns after events with those after as many random bars (Welch t)."""
    rng = np.random.default_rng(seed)
    out = []
    for h in horizons:
        fwd = forward_returns(close, h)
        valid = np.isfinite(fwd)
        hits = fwd[events.astype(bool) & valid]
        if hits.size < 2:
            continue
        # The matched baseline: bars drawn from the same span, ten per event, no event bars.
        pool = np.flatnonzero(valid & ~events.astype(bool))
        draw = rng.choice(pool, size=min(pool.size, hits.size * 10), replace=False)
        base = fwd[draw]
        t = stats.ttest_ind(hits, base, equal_var=False)
        out.append(
            PatternStat(
                pattern=name,
                horizon=h,
                events=int(hits.size),
                mean=float(hits.mean()),
                baseline_mean=float(base.mean()),
                statistic=float(t.statistic),
                p_value=float(t.pvalue),
            )
        )
    return out


def scan_patterns(
    bars: pd.DataFrame, *, horizons: list[int], candles: bool = True, seed: int = 0
) -> list[PatternStat]:
    """Run every chart detector (and TA-Lib candlestick, split by direction) over ``bars``."""
    if len(bars) < 200:
        raise ResearchInputError(f"need at least 200 bars for a pattern scan, got {len(bars)}")
    close = bars["close"].to_numpy(dtype=float)
    results = []
    for name, detect in CHART_PATTERNS.items():
        results += pattern_vs_random(name, detect(bars), close, horizons, seed=seed)
    for name in candlestick_names() if candles else []:
        signal = candlestick(bars, name)
        for label, direction in (("bull", 1), ("bear", -1)):
            events = signal == direction
            results += pattern_vs_random(f"{name}:{label}", events, close, horizons, seed=seed)
    return results
