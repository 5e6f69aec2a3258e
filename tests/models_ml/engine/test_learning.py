"""End to end on synthetic data: a planted signal is found, a random walk is called "no edge".

The planted signal (see ``synthetic.planted_bars``) makes the sign of the next return follow
sign(r_t * r_{t-1}): an interaction of two lags. The previous-return-sign baseline cannot see it
(E[sign(r_{t+1}) sign(r_t)] = 0); the logistic baseline on the last-step features recovers part
of it through non-linear indicators (stochastic, Williams %R, ...), so it is reported, not beaten
by assertion. Every network must beat always-long, previous-sign and random out of sample with a
significant binomial test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models_ml.engine.datasets import walk_forward_splits
from models_ml.engine.evaluation import EvaluationConfig, evaluate_walk_forward
from models_ml.engine.training import TrainConfig, walk_forward
from tests.models_ml.engine.synthetic import planted_bars, random_walk_bars, windowed_data

SMALL = {
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dropout": 0.0},
    "lstm": {"hidden": 16, "n_layers": 1, "dropout": 0.0},
    "cnn": {"channels": 16, "n_layers": 2, "dropout": 0.0},
}
CONFIG = TrainConfig(epochs=10, batch_size=128, lr=3e-3, patience=3, seed=3)


def evaluate(kind: str, bars, epochs: int):
    """Walk-forward train ``kind`` on bars and return the evaluation report."""
    data = windowed_data(bars, window=16, horizon=1)
    folds = walk_forward_splits(data.n_samples, 2, gap=data.horizon)
    config = TrainConfig(**{**CONFIG.to_dict(), "epochs": epochs})
    results = walk_forward(data, kind, SMALL[kind], folds, config)
    return evaluate_walk_forward(data, results, EvaluationConfig(fee_bps=1.0, alpha=0.01))


@pytest.fixture(scope="module")
def planted():
    return planted_bars(4000, seed=1, strength=1.0)


@pytest.fixture(scope="module")
def random_walk():
    return random_walk_bars(3000, seed=2)


@pytest.mark.parametrize("kind", ["transformer", "lstm", "cnn"])
def test_network_finds_the_planted_signal_out_of_sample(kind: str, planted) -> None:
    report = evaluate(kind, planted, epochs=10)
    model, base = report.model, report.baselines
    for name in ("always_long", "previous_sign", "random"):
        assert model.accuracy > base[name].accuracy + 0.1, (name, model, base[name])
    assert model.auc > 0.7
    assert report.p_value_vs_chance < 1e-6
    assert model.sharpe > base["random"].sharpe
    assert model.log_loss < math.log(2)
    assert len(report.per_fold) == 2
    json.dumps(report.as_dict())  # storable as TrainingRun.metrics


@pytest.mark.parametrize("kind", ["transformer", "lstm", "cnn"])
def test_random_walk_reports_no_edge(kind: str, random_walk) -> None:
    report = evaluate(kind, random_walk, epochs=6)
    n = report.model.n
    assert abs(report.model.accuracy - 0.5) < 3 * 0.5 / np.sqrt(n)  # within chance bounds
    assert report.p_value_vs_chance > 0.01
    assert not report.has_edge and report.verdict == "no edge"
