"""Training: reproducible seeds, early stopping with best weights, callbacks, folds, search."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from models_ml.engine.datasets import fit_scaler, scaled_windows, walk_forward_splits
from models_ml.engine.errors import DatasetError, TrainingError
from models_ml.engine.networks import build_network
from models_ml.engine.training import (
    EpochMetrics,
    TrainConfig,
    candidate_params,
    predict_windows,
    search_hyperparameters,
    train_on_positions,
    walk_forward,
)
from tests.models_ml.engine.synthetic import random_walk_bars, windowed_data

TINY = {"hidden": 8, "n_layers": 1, "dropout": 0.0}
CONFIG = TrainConfig(epochs=3, batch_size=64, lr=3e-3, patience=2, seed=11)


@pytest.fixture(scope="module")
def data():
    return windowed_data(random_walk_bars(900, seed=21), window=16, horizon=2)


def test_same_seed_same_training_different_seed_different(data) -> None:
    positions = np.arange(400)
    a, _, _ = train_on_positions(data, "lstm", TINY, positions, CONFIG)
    b, _, _ = train_on_positions(data, "lstm", TINY, positions, CONFIG)
    c, _, _ = train_on_positions(data, "lstm", TINY, positions, replace(CONFIG, seed=12))
    assert [m.train_loss for m in a.history] == [m.train_loss for m in b.history]
    for key, value in a.network.state_dict().items():
        assert np.array_equal(value.numpy(), b.network.state_dict()[key].numpy())
    assert [m.train_loss for m in a.history] != [m.train_loss for m in c.history]


def test_early_stopping_keeps_the_best_epoch(data) -> None:
    config = replace(CONFIG, epochs=30, lr=3e-2, patience=2)
    seen: list[EpochMetrics] = []
    fit, _, _ = train_on_positions(data, "lstm", TINY, np.arange(500), config, on_epoch=seen.append)
    assert fit.stopped_early and len(fit.history) < 30
    assert seen == fit.history
    best = min(fit.history, key=lambda m: m.val_loss)
    assert fit.best_epoch == best.epoch and fit.best_val_loss == best.val_loss
    assert len(fit.history) - 1 - fit.best_epoch == config.patience  # stopped `patience` after
    assert [m.best for m in fit.history].count(True) >= 1
    json.dumps([m.as_dict() for m in fit.history])  # storable in TrainingRun.epochs


def test_walk_forward_returns_out_of_sample_predictions_per_fold(data) -> None:
    folds = walk_forward_splits(data.n_samples, 2, gap=data.horizon)
    seen_folds = []
    results = walk_forward(data, "cnn", {"channels": 8, "n_layers": 2}, folds, CONFIG,
                           on_fold=seen_folds.append)  # fmt: skip
    assert [r.fold.index for r in results] == [0, 1] and seen_folds == results
    for result, fold in zip(results, folds, strict=True):
        np.testing.assert_array_equal(result.rows, data.ends[fold.test])
        assert (result.ts == data.index[result.rows]).all()
        assert ((result.prob > 0) & (result.prob < 1)).all()
        assert len(result.ret_pred) == len(fold.test) and np.isfinite(result.ret_pred).all()
        # The fold's scaler saw only rows up to its last training sample.
        last_train_row = data.ends[fold.train.max()]
        manual = data.features[data.ends[fold.train.min()] - data.window + 1 : last_train_row + 1]
        np.testing.assert_allclose(result.scaler.mean, manual.mean(0))


def test_candidates_are_a_full_grid_or_seeded_draws() -> None:
    space = {"hidden": [8, 16], "lr": [1e-3, 3e-3, 1e-2]}
    grid = candidate_params(space, "grid", 0, 0)
    assert len(grid) == 6 and {"hidden": 16, "lr": 1e-2} in grid
    assert candidate_params(space, "random", 4, 5) == candidate_params(space, "random", 4, 5)
    with pytest.raises(TrainingError):
        candidate_params(space, "bayes", 3, 0)


def test_search_picks_the_lowest_validation_loss_and_ignores_test_data(data) -> None:
    space = {"hidden": [4, 8], "lr": [3e-3]}
    positions = np.arange(300)
    config = replace(CONFIG, epochs=2)
    result = search_hyperparameters(data, "lstm", space, positions, config, method="grid",
                                    base_hparams={"n_layers": 1})  # fmt: skip
    assert len(result.trials) == 2
    assert result.best_params == min(result.trials, key=lambda t: t.val_loss).params
    # Data after the searched positions (the future test period) cannot change the outcome.
    poisoned = data.features.copy()
    poisoned[data.ends[positions.max()] + 1 :] *= 50.0
    data2 = replace(data, features=poisoned)
    again = search_hyperparameters(data2, "lstm", space, positions, config, method="grid",
                                   base_hparams={"n_layers": 1})  # fmt: skip
    assert [t.val_loss for t in again.trials] == [t.val_loss for t in result.trials]


def test_fit_needs_samples(data) -> None:
    with pytest.raises(DatasetError):
        train_on_positions(data, "lstm", TINY, np.arange(3), CONFIG)


@pytest.mark.parametrize(("kind", "hparams"), [
    ("cnn", {"channels": 8, "n_layers": 2}),  # receptive field 13 <= window 16: series path
    ("cnn", {"channels": 8, "n_layers": 3}),  # receptive field 29 > window 16: windows
    ("transformer", {"d_model": 16, "n_layers": 2}),
    ("lstm", TINY),
])  # fmt: skip
def test_predict_windows_equals_the_forward_of_each_window(data, kind, hparams) -> None:
    torch.manual_seed(6)
    net = build_network(kind, len(data.feature_names), **hparams).eval()
    windows = scaled_windows(data, fit_scaler(data, np.arange(data.n_samples)))
    positions = np.r_[np.arange(0, 300), np.arange(500, data.n_samples)]  # a gap between blocks
    prob, ret = predict_windows(net, windows, positions, batch_size=64)
    with torch.inference_mode():
        logit, want_ret = net(windows.batch(positions))
    np.testing.assert_allclose(prob, torch.sigmoid(logit).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, want_ret.numpy(), rtol=1e-5, atol=1e-6)
