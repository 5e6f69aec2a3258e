"""``train --features-from RUN``: train on the features an optimisation run chose, beside all."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from marketdata.selectors import bars_frame
from models_ml.engine.errors import FeatureError
from models_ml.engine.features import FeatureSet
from models_ml.engine.inference import Predictor
from models_ml.models import MLModel, OptimizationRun, TrainingRun
from models_ml.selectors import model_artifact_dir
from tests.backtesting.engine.helpers import sim_frame

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(180)]

START, END = "2024-01-01", "2024-01-03T02:00"  # 3,000 one-minute bars
T0, T1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, 2, tzinfo=UTC)
TINY = ["--start", START, "--end", END, "--epochs", "1", "--folds", "2", "--window", "32",
        "--source", "sim"]
CNN = ["--model", "cnn", "--hparams", '{"channels": 8, "n_layers": 2}', "--no-progress"]


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return settings.MODELS_DIR


def command(name: str, *args: str) -> str:
    """Run a command in-process on the simulated market's bars; return stdout."""
    out = io.StringIO()
    call_command(name, *args, "--source", "sim", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_chosen_subset_computes_the_same_columns_batch_and_online():
    bars = sim_frame(400).set_index("ts")
    full = FeatureSet.for_frame(bars)
    chosen = [full.names[7], full.names[2], full.names[20]]
    subset = full.select(chosen)
    assert subset.names == (full.names[2], full.names[7], full.names[20])  # layout order
    expected = full.compute(bars)[list(subset.names)]
    got = subset.compute(bars)
    assert got.equals(expected)
    online = subset.online()
    rows = [online.update_array({"ts": ts, **row}) for ts, row in bars.iterrows()]
    assert np.allclose(rows[-1], got.iloc[-1].to_numpy(), rtol=1e-9, atol=1e-12)
    assert FeatureSet.from_dict(subset.to_dict()).names == subset.names
    with pytest.raises(FeatureError, match="unknown or no feature column"):
        full.select(["not_a_feature"])


def test_train_on_the_chosen_features_is_compared_with_all_features(models_dir):
    command(
        "optimize",
        "--problem",
        "features",
        "--method",
        "greedy",
        "--symbols",
        "BTC-USD",
        "--start",
        START,
        "--end",
        END,
        "--timeframe",
        "1m",
        "--budget",
        "4",
        "--candidates",
        "8",
    )
    chosen = OptimizationRun.objects.get().result["answer"]["chosen"]

    out = command(
        "train",
        *CNN,
        "--symbols",
        "BTC-USD",
        *TINY,
        "--features-from",
        str(OptimizationRun.objects.get().pk),
    )

    model = MLModel.objects.get()
    assert sorted(model.feature_names) == sorted(chosen)
    every = model.metrics["all_features"]
    assert every["features"] > 4 and every["chosen"] == chosen
    # The same folds: both evaluations scored exactly the same out-of-sample predictions.
    assert every["model"]["n"] == model.metrics["model"]["n"]
    assert "vs all features, same folds" in out
    predictor = Predictor.load(model_artifact_dir(model))
    assert list(predictor.spec.feature_names) == model.feature_names
    predictions = predictor.predict_batch(
        bars_frame(symbol="BTC-USD", timeframe="1m", start=T0, end=T1, simulated=True)
    )
    assert len(predictions) > 2500


@pytest.mark.parametrize("run", ["999", "portfolio"])
def test_a_run_that_chose_no_features_is_refused_before_anything_is_written(run):
    if run == "portfolio":
        command(
            "optimize",
            "--problem",
            "portfolio",
            "--method",
            "greedy",
            "--symbols",
            "BTC-USD,ETH-USD",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-03",
        )
        run = str(OptimizationRun.objects.get().pk)
    with pytest.raises(CommandError, match="not a completed feature selection|does not exist"):
        command("train", *CNN, "--symbols", "BTC-USD", *TINY, "--features-from", run)
    assert not TrainingRun.objects.exists() and not MLModel.objects.exists()
