"""Pattern detectors on constructed price paths, without look-ahead, against random bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from research.engine import patterns
from research.engine.errors import ResearchInputError


def bars_from(close: np.ndarray) -> pd.DataFrame:
    """Return OHLC bars around a close path (open = previous close)."""
    opens = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.0005,
            "low": np.minimum(opens, close) * 0.9995,
            "close": close,
            "volume": 1.0,
        }
    )


def path(*legs: tuple[float, int]) -> np.ndarray:
    """Piecewise-linear closes from 100 through (level, bars) legs."""
    out, level = [], 100.0
    for target, n in legs:
        out.extend(np.linspace(level, target, n + 1)[1:])
        level = target
    return np.array(out)


def test_double_top_fires_once_the_second_top_is_confirmed():
    close = path((110, 20), (102, 20), (110, 20), (95, 30))
    events = np.flatnonzero(patterns.double_top(bars_from(close), order=5))
    second_top = 59
    assert list(events) == [second_top + 5]
    assert not patterns.double_bottom(bars_from(close), order=5).any()


def test_double_bottom_mirrors_double_top():
    close = path((90, 20), (98, 20), (90, 20), (105, 30))
    assert np.flatnonzero(patterns.double_bottom(bars_from(close), order=5)).tolist() == [64]


def test_head_and_shoulders_needs_a_higher_head_between_level_shoulders():
    close = path((110, 15), (103, 15), (118, 15), (103, 15), (110, 15), (95, 30))
    events = np.flatnonzero(patterns.head_and_shoulders(bars_from(close), order=5))
    assert events.tolist() == [74 + 5]
    flat_head = path((110, 15), (103, 15), (110.5, 15), (103, 15), (110, 15), (95, 30))
    assert not patterns.head_and_shoulders(bars_from(flat_head), order=5).any()


def test_breakout_fires_on_the_first_close_above_the_range():
    rng = np.random.default_rng(1)
    close = np.concatenate([100 + rng.uniform(-1, 1, 60), [105.0, 106.0, 107.0]])
    events = np.flatnonzero(patterns.breakout(bars_from(close), lookback=20))
    assert 60 in events and 61 not in events and 62 not in events


def test_volatility_squeeze_fires_when_bands_narrow_to_a_record():
    rng = np.random.default_rng(2)
    wide = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    calm = wide[-1] * np.exp(np.cumsum(rng.normal(0, 0.001, 100)))
    events = np.flatnonzero(patterns.volatility_squeeze(bars_from(np.concatenate([wide, calm]))))
    assert events.size >= 1 and events.min() >= 300


def test_candlesticks_come_from_ta_lib():
    names = patterns.candlestick_names()
    assert "CDLENGULFING" in names and len(names) > 50
    bars = bars_from(np.full(30, 100.0))
    bars.loc[28, ["open", "high", "low", "close"]] = [101.0, 101.2, 99.8, 100.0]  # black body
    bars.loc[29, ["open", "high", "low", "close"]] = [99.5, 102.5, 99.4, 102.0]  # engulfs it
    assert patterns.candlestick(bars, "CDLENGULFING")[29] == 1
    with pytest.raises(ResearchInputError, match="unknown candlestick"):
        patterns.candlestick(bars, "CDLNOPE")


@pytest.mark.parametrize("name", sorted(patterns.CHART_PATTERNS))
def test_no_detector_looks_ahead(name):
    rng = np.random.default_rng(3)
    bars = bars_from(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000))))
    detect = patterns.CHART_PATTERNS[name]
    full = np.flatnonzero(detect(bars))
    assert full.size > 0
    for i in full[:15]:
        known_then = detect(bars.iloc[: i + 1].reset_index(drop=True))
        assert known_then[i], f"{name} at {i} needs data after it"


def test_forward_returns_after_a_planted_edge_beat_random_bars_and_noise_does_not():
    rng = np.random.default_rng(4)
    steps = rng.normal(0, 0.01, 3000)
    events = np.zeros(3000, dtype=bool)
    events[rng.choice(np.arange(50, 2900), 60, replace=False)] = True
    steps[np.flatnonzero(events) + 1] += 0.01  # the bar after each event rises: a real edge
    close = 100 * np.exp(np.cumsum(steps))
    (edge,) = patterns.pattern_vs_random("planted", events, close, [1])
    assert edge.p_value < 0.001 and edge.mean > edge.baseline_mean
    random_events = np.zeros(3000, dtype=bool)
    random_events[rng.choice(3000, 60, replace=False)] = True
    (none,) = patterns.pattern_vs_random("random", random_events & ~events, close, [1])
    assert none.p_value > 0.01


def test_scan_reports_chart_and_candlestick_patterns_per_horizon():
    rng = np.random.default_rng(5)
    bars = bars_from(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1500))))
    stats = patterns.scan_patterns(bars, horizons=[1, 10])
    names = {s.pattern for s in stats}
    assert {"breakout", "double_top"} <= names
    assert any(n.startswith("CDL") for n in names)
    assert {s.horizon for s in stats} == {1, 10}
    with pytest.raises(ResearchInputError, match="200 bars"):
        patterns.scan_patterns(bars.iloc[:100], horizons=[1])


def clustered_noise(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random walk and events in runs of 10 consecutive bars: overlapping forward returns."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 2000)))
    events = np.zeros(2000, dtype=bool)
    for start in rng.choice(np.arange(1950), 8, replace=False):
        events[start : start + 10] = True
    return close, events


def test_overlapping_forward_returns_keep_the_false_positive_rate_near_alpha():
    h, seeds = 20, range(100)
    rejected = {"thin": 0, "hac": 0, "naive": 0}
    for seed in seeds:
        close, events = clustered_noise(seed)
        for method in ("thin", "hac"):
            (res,) = patterns.pattern_vs_random("x", events, close, [h], overlap=method)
            rejected[method] += res.p_value < 0.05
        fwd = patterns.forward_returns(close, h)
        ok = np.isfinite(fwd)
        naive = stats.ttest_ind(fwd[events & ok], fwd[~events & ok], equal_var=False)
        rejected["naive"] += naive.pvalue < 0.05
    # What the correction buys: a naive test on overlapping returns rejects a true null often.
    assert rejected["naive"] > 30
    assert rejected["thin"] <= 8 and rejected["hac"] <= 13, rejected


@pytest.mark.parametrize("method", ["thin", "hac"])
def test_a_planted_multi_bar_edge_is_still_found_with_overlap_handled(method):
    rng = np.random.default_rng(6)
    steps = rng.normal(0, 0.01, 4000)
    events = np.zeros(4000, dtype=bool)
    events[rng.choice(np.arange(50, 3900), 80, replace=False)] = True
    for i in np.flatnonzero(events):
        steps[i + 1 : i + 6] += 0.006  # five rising bars after each event
    close = 100 * np.exp(np.cumsum(steps))
    (edge,) = patterns.pattern_vs_random("planted", events, close, [5], overlap=method)
    assert edge.p_value < 0.001 and edge.mean > edge.baseline_mean


def test_an_unknown_overlap_method_is_refused():
    close, events = clustered_noise(0)
    with pytest.raises(ResearchInputError, match="overlap"):
        patterns.pattern_vs_random("x", events, close, [5], overlap="ignore")
