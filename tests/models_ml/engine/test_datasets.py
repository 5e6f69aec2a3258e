"""Datasets: targets strictly after windows, leak-free splits, train-only scaler, lazy windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models_ml.engine.datasets import (
    Fold,
    StandardScaler,
    assert_no_overlap,
    build_windowed,
    fit_scaler,
    holdout_split,
    make_targets,
    scaled_windows,
    walk_forward_splits,
)
from models_ml.engine.errors import DatasetError


def toy_frame(n: int = 300, n_features: int = 3, warmup: int = 10, seed: int = 0) -> pd.DataFrame:
    """Return a feature frame with NaN warm-up rows."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, n_features))
    values[:warmup] = np.nan
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame(values, index=index, columns=[f"f{i}" for i in range(n_features)])


def test_targets_use_only_closes_after_t() -> None:
    close = np.array([100.0, 101.0, 99.0, 99.0, 105.0, 104.0])
    t = make_targets(close, horizon=2)
    np.testing.assert_allclose(t.ret[:4], np.log(close[2:] / close[:4]))
    assert np.isnan(t.ret[4:]).all() and np.isnan(t.direction[4:]).all()
    np.testing.assert_array_equal(t.direction[:4], [0.0, 0.0, 1.0, 1.0])
    r = np.diff(np.log(close))
    np.testing.assert_allclose(t.vol[:4], np.sqrt(r[:4] ** 2 + r[1:5] ** 2))
    np.testing.assert_allclose(t.next_ret[:5], r)
    # Changing close[t] for t <= 1 must not change the targets at row 2 and later.
    other = close.copy()
    other[:2] = [50.0, 60.0]
    np.testing.assert_array_equal(make_targets(other, 2).ret[2:], t.ret[2:])


def test_windows_are_views_and_samples_end_before_their_horizon() -> None:
    frame = toy_frame()
    close = np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, len(frame))))
    data = build_windowed(frame, close, window=32, horizon=3)
    assert data.ends[0] == 10 + 32 - 1 and data.ends[-1] == len(frame) - 1 - 3
    windows = scaled_windows(data, fit_scaler(data, np.arange(data.n_samples)))
    x = windows.batch(np.array([0, 5]))
    assert x.shape == (2, 32, 3)
    assert windows.nbytes == len(frame) * 3 * 4  # only the (rows, features) matrix is held
    rows = data.features[10 : data.ends[-1] + 1]  # what the scaler may see: rows inside windows
    window_rows = data.features[data.ends[5] - 31 : data.ends[5] + 1]
    manual = (window_rows - rows.mean(0)) / rows.std(0)
    expected = torch.as_tensor(manual, dtype=torch.float32)
    torch.testing.assert_close(x[1], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(windows.last_rows(np.array([5])), manual[-1:], rtol=1e-5, atol=1e-5)


def test_window_bounds_and_nan_gaps_are_rejected() -> None:
    frame = toy_frame()
    close = np.ones(len(frame))
    with pytest.raises(DatasetError):
        build_windowed(frame, close, window=1, horizon=1)
    with pytest.raises(DatasetError):
        build_windowed(frame, close, window=1001, horizon=1)
    gappy = frame.copy()
    gappy.iloc[100, 0] = np.nan
    with pytest.raises(DatasetError, match="NaN"):
        build_windowed(gappy, close, window=8, horizon=1)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(200, 3000),
    n_folds=st.integers(1, 5),
    horizon=st.integers(1, 10),
    rolling=st.booleans(),
)
def test_walk_forward_folds_never_leak(n: int, n_folds: int, horizon: int, rolling: bool) -> None:
    mode = "rolling" if rolling else "expanding"
    folds = walk_forward_splits(n, n_folds, gap=horizon, mode=mode, train_size=100)
    assert len(folds) == n_folds
    previous_test_end = -1
    for fold in folds:
        assert fold.train.max() + horizon < fold.test.min()  # embargo of `horizon` samples
        assert fold.test.min() > previous_test_end  # test blocks move forward, no overlap
        previous_test_end = fold.test.max()
        if rolling:
            assert len(fold.train) <= 100
        else:
            assert fold.train.min() == 0
    assert folds[-1].test.max() == n - 1


def test_overlap_check_catches_a_too_small_gap() -> None:
    frame = toy_frame(400)
    data = build_windowed(frame, np.ones(400), window=8, horizon=5)
    ok = walk_forward_splits(data.n_samples, 2, gap=5)
    for fold in ok:
        assert_no_overlap(data, fold)
    leaky = Fold(0, np.arange(0, 100), np.arange(102, 150))
    with pytest.raises(DatasetError, match="overlap"):
        assert_no_overlap(data, leaky)
    with pytest.raises(DatasetError):
        walk_forward_splits(10, 10, gap=5)
    with pytest.raises(DatasetError, match="train_size"):
        walk_forward_splits(500, 2, gap=1, mode="rolling")


def test_holdout_split_keeps_the_gap() -> None:
    fit, val = holdout_split(np.arange(100), 0.2, gap=3)
    assert fit.max() + 3 < val.min() and len(val) == 20 and val.max() == 99
    with pytest.raises(DatasetError):
        holdout_split(np.arange(5), 0.5, gap=10)


def test_scaler_is_fitted_on_training_rows_only() -> None:
    frame = toy_frame(500)
    data = build_windowed(frame, np.ones(500), window=16, horizon=2)
    fold = walk_forward_splits(data.n_samples, 1, gap=2)[0]
    before = fit_scaler(data, fold.train)
    poisoned = frame.copy()
    last_train_row = data.ends[fold.train.max()]
    poisoned.iloc[last_train_row + 1 :] = 1e6  # everything after training is wildly different
    data2 = build_windowed(poisoned, np.ones(500), window=16, horizon=2)
    after = fit_scaler(data2, fold.train)
    np.testing.assert_allclose(before.mean, after.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(before.scale, after.scale, rtol=1e-12)
    # ...while a scaler fitted on test rows would have moved.
    assert not np.allclose(fit_scaler(data2, fold.test).mean, before.mean)


def test_scaler_standardises_and_round_trips() -> None:
    x = np.random.default_rng(3).normal(5.0, 2.0, size=(1000, 4))
    x[:, 3] = 7.0  # constant column: scale 1, no division by zero
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :3].std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(z[:, 3], 0.0)
    again = StandardScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(x), z)
    with pytest.raises(DatasetError):
        StandardScaler().transform(x)
