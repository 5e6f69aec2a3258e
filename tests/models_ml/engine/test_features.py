"""Features: one definition, batch == online, no look-ahead, validated inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.engine.events import Bar
from models_ml.engine.errors import FeatureError, StaleBarError
from models_ml.engine.features import EXTRA_GROUPS, FeatureConfig, FeatureSet
from tests.models_ml.engine.synthetic import random_walk_bars, with_extras


def online_matrix(fs: FeatureSet, df: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Feed df bar by bar; return the stacked rows and how many updates returned None."""
    online = fs.online()
    rows, nones = [], 0
    for ts, values in zip(df.index, df.to_dict("records"), strict=True):
        row = online.update({"ts": ts, **values})
        if row is None:
            nones += 1
        else:
            rows.append([row[name] for name in fs.names])
    return np.array(rows), nones


def assert_equal_features(online: np.ndarray, batch: np.ndarray) -> None:
    """Assert |online - batch| <= 1e-9 * (|batch| + column std): relative, scale-aware."""
    scale = batch.std(axis=0)
    bound = 1e-9 * (np.abs(batch) + scale[None, :]) + 1e-15
    worst = np.abs(online - batch) / bound
    assert worst.max() <= 1.0, f"max error {worst.max():.3g} x bound"


def test_core_feature_set_has_at_least_25_scale_free_features() -> None:
    fs = FeatureSet()
    assert len(fs.names) >= 25
    assert len(set(fs.names)) == len(fs.names)
    for expected in ("rsi", "macd", "macd_signal", "macd_hist", "bb_width", "bb_pctb", "atr",
                     "adx", "obv_z", "mfi", "stoch_k", "stoch_d", "cci", "roc", "willr",
                     "ret_lag_0", "rvol_10", "volume_z"):  # fmt: skip
        assert expected in fs.names
    # Scale-free: multiplying prices and volumes by constants leaves the features unchanged.
    df = random_walk_bars(800, seed=1)
    scaled = df.assign(**{c: df[c] * 1000.0 for c in ("open", "high", "low", "close")})
    scaled["volume"] *= 7.0
    a, b = fs.compute(df).to_numpy(), fs.compute(scaled).to_numpy()
    np.testing.assert_allclose(a[fs.warmup :], b[fs.warmup :], rtol=1e-6, atol=1e-9)


def test_extras_are_detected_from_columns_and_add_features() -> None:
    df = with_extras(random_walk_bars(400, seed=2), seed=2)
    fs = FeatureSet.for_frame(df)
    assert fs.extras == tuple(sorted(EXTRA_GROUPS))
    for name in ("spread_bps", "book_imbalance", "flow_imbalance", "sentiment", "vwap_dev"):
        assert name in fs.names
    assert FeatureSet.for_frame(df.drop(columns=["ask"])).extras.count("spread") == 0
    with pytest.raises(FeatureError, match="unknown extra"):
        FeatureSet(extras=["gossip"])


@pytest.mark.parametrize("extras", [False, True])
def test_online_equals_batch_at_every_timestamp(extras: bool) -> None:
    df = random_walk_bars(4000, seed=3)
    if extras:
        df = with_extras(df, seed=3)
    fs = FeatureSet.for_frame(df)
    batch = fs.compute(df).to_numpy()
    online, nones = online_matrix(fs, df)
    assert nones == fs.warmup
    assert np.isnan(batch[: fs.warmup]).all()
    assert np.isfinite(batch[fs.warmup :]).all()
    assert_equal_features(online, batch[fs.warmup :])


def test_online_equals_batch_through_flat_bars_and_zero_volume() -> None:
    df = random_walk_bars(1500, seed=4)
    flat = df["close"].iloc[599]
    df.iloc[600:700, :4] = flat  # no movement at all: zero ranges, zero stds
    df.iloc[650:760, 4] = 0.0
    fs = FeatureSet()
    batch = fs.compute(df).to_numpy()
    online, _ = online_matrix(fs, df)
    assert np.isfinite(batch[fs.warmup :]).all()
    assert_equal_features(online, batch[fs.warmup :])


def test_settle_extends_the_warmup_in_both_modes() -> None:
    fs = FeatureSet(FeatureConfig(settle=40))
    assert fs.warmup == FeatureSet().warmup + 40
    df = random_walk_bars(fs.warmup + 30, seed=5)
    batch = fs.compute(df)
    assert batch.iloc[: fs.warmup].isna().all().all()
    _, nones = online_matrix(fs, df)
    assert nones == fs.warmup


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(1, 700),
    extra=st.integers(1, 300),
)
def test_appending_future_bars_never_changes_past_features(seed: int, cut: int, extra: int) -> None:
    df = with_extras(random_walk_bars(1000, seed=seed), seed=seed)
    fs = FeatureSet.for_frame(df)
    short = fs.compute(df.iloc[:cut]).to_numpy()
    longer = fs.compute(df.iloc[: cut + extra]).to_numpy()
    np.testing.assert_array_equal(short, longer[:cut])


def test_online_accepts_bar_events_and_rejects_stale_bars() -> None:
    df = random_walk_bars(200, seed=6)
    fs = FeatureSet(extras=["vwap"])
    frame = df.assign(vwap=(df["high"] + df["low"]) / 2)
    batch = fs.compute(frame).to_numpy()
    online = fs.online()
    last = None
    for ts, row in frame.iterrows():
        bar = Bar("BTC-USD", "1m", ts.to_pydatetime(), row.open, row.high, row.low, row.close,
                  row.volume, vwap=row.vwap)  # fmt: skip
        last = online.update_array(bar)
    np.testing.assert_allclose(last, batch[-1], rtol=1e-9)
    with pytest.raises(StaleBarError):
        online.update(bar)


def test_bad_inputs_raise_feature_errors() -> None:
    fs = FeatureSet()
    df = random_walk_bars(100, seed=7)
    with pytest.raises(FeatureError, match="increasing"):
        fs.compute(df.iloc[::-1])
    with pytest.raises(FeatureError, match="lack"):
        fs.compute(df.drop(columns=["volume"]))
    with pytest.raises(FeatureError, match="timezone"):
        fs.compute(df.tz_localize(None))
    bad = df.copy()
    bad.iloc[10, 3] = -1.0
    with pytest.raises(FeatureError, match="> 0"):
        fs.compute(bad)
    with pytest.raises(FeatureError):
        fs.online().update({"ts": datetime(2024, 1, 1, tzinfo=UTC), "open": 1.0, "close": 1.0})
    with pytest.raises(FeatureError):
        FeatureConfig(macd_fast=30)


def test_ts_column_frames_are_accepted() -> None:
    df = random_walk_bars(300, seed=8)
    fs = FeatureSet()
    pd.testing.assert_frame_equal(fs.compute(df.reset_index()), fs.compute(df), check_freq=False)


def test_changed_talib_unstable_period_is_refused() -> None:
    talib.set_unstable_period("RSI", 5)
    try:
        with pytest.raises(FeatureError, match="unstable"):
            FeatureSet().compute(random_walk_bars(100, seed=9))
    finally:
        talib.set_unstable_period("RSI", 0)


def test_feature_set_round_trips_through_a_dict() -> None:
    fs = FeatureSet(FeatureConfig(ma_lengths=(5, 15), settle=3), extras=["flow", "book"])
    again = FeatureSet.from_dict(fs.to_dict())
    assert again.names == fs.names and again.warmup == fs.warmup
    with pytest.raises(FeatureError, match="unknown feature config"):
        FeatureConfig.from_dict({"nope": 1})
