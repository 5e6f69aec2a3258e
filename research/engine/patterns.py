"""Chart and candlestick pattern detectors and their forward returns against random bars.

Every event is dated at the bar where the pattern is *known*: a swing point needs ``order``
later bars to be confirmed, so patterns built from swings fire ``order`` bars after the
extreme. Forward returns run from that bar's close, so no detector sees the future.

Forward returns at horizon h > 1 of neighbouring bars overlap (they share h - 1 bars), so
their errors are serially correlated and a plain t-test overstates significance. Two honest
tests are offered: ``overlap="thin"`` (default) keeps only non-overlapping samples (events
at least h bars apart, random baseline bars on a grid of every h-th bar) and runs Welch's
t-test on them; ``"hac"`` regresses every bar's forward return on an event dummy with
Newey-West (HAC) standard errors, 2h lags, t reference (statsmodels): more power, but on
clustered events at h = 20 it still rejects a true null ~8 % of the time at 5 % (the tests
measure it), where thinning rejects ~3 % and a naive t-test over half the time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
import talib
from scipy import stats
from scipy.signal import argrelextrema

from research.engine.errors import ResearchInputError
from research.engine.names import OVERLAP_METHODS

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


def _thin(indices: np.ndarray, gap: int) -> np.ndarray:
    """Keep indices (sorted) at least ``gap`` apart, greedily from the first."""
    kept: list[int] = []
    for i in indices:
        if not kept or i - kept[-1] >= gap:
            kept.append(int(i))
    return np.array(kept, dtype=int)


def _hac_test(fwd: np.ndarray, events: np.ndarray, valid: np.ndarray, h: int):
    """Return (event mean, other-bars mean, t, p): OLS on an event dummy, Newey-West 2h lags."""
    y = fwd[valid]
    dummy = events[valid].astype(float)
    fit = sm.OLS(y, sm.add_constant(dummy)).fit(
        cov_type="HAC", cov_kwds={"maxlags": 2 * h}, use_t=True
    )
    base = float(fit.params[0])
    return base + float(fit.params[1]), base, float(fit.tvalues[1]), float(fit.pvalues[1])


def pattern_vs_random(
    name: str,
    events: np.ndarray,
    close: np.ndarray,
    horizons: list[int],
    *,
    seed: int = 0,
    overlap: str = "thin",
) -> list[PatternStat]:
    """Compare forward returns after events with those after other bars, for overlap.

    ``hac``: every other bar of the span is the baseline (the population random bars are
    drawn from); ``thin``: non-overlapping events against ten times as many random bars drawn
    (seeded) from a grid of every h-th bar. See the module docstring.
    """
    if overlap not in OVERLAP_METHODS:
        raise ResearchInputError(f"overlap must be one of {', '.join(OVERLAP_METHODS)}")
    rng = np.random.default_rng(seed)
    events = events.astype(bool)
    out = []
    for h in horizons:
        fwd = forward_returns(close, h)
        valid = np.isfinite(fwd)
        hits_at = np.flatnonzero(events & valid)
        if overlap == "thin":
            hits_at = _thin(hits_at, h)
        if hits_at.size < 2 or (~events & valid).sum() < 2:
            continue
        if overlap == "hac":
            mean, base_mean, t_stat, p = _hac_test(fwd, events, valid, h)
        else:
            # Random bars on a grid of every h-th bar (offset drawn): no two overlap.
            offset = int(rng.integers(h))
            grid = np.flatnonzero(valid & ~events)
            pool = grid[grid % h == offset]
            draw = rng.choice(pool, size=min(pool.size, hits_at.size * 10), replace=False)
            hits, base = fwd[hits_at], fwd[draw]
            t = stats.ttest_ind(hits, base, equal_var=False)
            mean, base_mean = float(hits.mean()), float(base.mean())
            t_stat, p = float(t.statistic), float(t.pvalue)
        out.append(
            PatternStat(
                pattern=name,
                horizon=h,
                events=int(hits_at.size),
                mean=mean,
                baseline_mean=base_mean,
                statistic=t_stat,
                p_value=p,
            )
        )
    return out


def scan_patterns(
    bars: pd.DataFrame,
    *,
    horizons: list[int],
    candles: bool = True,
    seed: int = 0,
    overlap: str = "thin",
) -> list[PatternStat]:
    """Run every chart detector (and TA-Lib candlestick, split by direction) over ``bars``."""
    if len(bars) < 200:
        raise ResearchInputError(f"need at least 200 bars for a pattern scan, got {len(bars)}")
    close = bars["close"].to_numpy(dtype=float)
    results = []
    for name, detect in CHART_PATTERNS.items():
        results += pattern_vs_random(
            name, detect(bars), close, horizons, seed=seed, overlap=overlap
        )
    for name in candlestick_names() if candles else []:
        signal = candlestick(bars, name)
        for label, direction in (("bull", 1), ("bear", -1)):
            events = signal == direction
            results += pattern_vs_random(
                f"{name}:{label}", events, close, horizons, seed=seed, overlap=overlap
            )
    return results
