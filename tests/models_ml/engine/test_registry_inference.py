"""Artifacts round-trip exactly; the Predictor matches batch inference bar by bar."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from marketdata.engine.events import Bar
from models_ml.engine.datasets import scaled_windows
from models_ml.engine.errors import ArtifactError, ChecksumMismatchError, FeatureError
from models_ml.engine.inference import ModelPrediction, Predictor
from models_ml.engine.pipeline import TrainingSpec, run_training
from models_ml.engine.registry import load_artifact, save_artifact, sha256_file
from models_ml.engine.training import TrainConfig, predict_windows
from tests.models_ml.engine.synthetic import planted_bars, with_extras
from trading.engine.strategy import PredictionKind

WINDOW = 16


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return with_extras(planted_bars(1400, seed=5), seed=5).drop(columns=["bid", "ask"])


@pytest.fixture(scope="module")
def outcome(bars):
    spec = TrainingSpec(
        kind="cnn",
        hparams={"channels": 8, "n_layers": 2},
        window=WINDOW,
        horizon=2,
        n_folds=2,
        train=TrainConfig(epochs=2, batch_size=128, seed=4),
    )
    progress: list[float] = []
    result = run_training(bars, spec, on_progress=progress.append)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    return result


@pytest.fixture
def artifact_dir(outcome, tmp_path):
    path = tmp_path / "btc-cnn-v1"
    outcome.save(path, metadata={"name": "btc-cnn", "version": 1})
    return path


def test_pipeline_outcome_carries_metrics_and_uses_the_extras(outcome) -> None:
    assert set(outcome.feature_set.extras) == {"book", "flow", "onchain", "sentiment", "vwap"}
    assert outcome.report.model.n == sum(len(f.rows) for f in outcome.folds)
    assert outcome.final.history  # the final model trained on every sample


def test_save_then_load_gives_identical_predictions(outcome, artifact_dir) -> None:
    artifact = load_artifact(artifact_dir)
    assert artifact.checksum == sha256_file(artifact_dir / "weights.pt")
    assert artifact.spec.feature_names == outcome.feature_set.names
    assert artifact.spec.metadata["name"] == "btc-cnn"
    assert "model" in artifact.spec.metadata["metrics"]
    np.testing.assert_array_equal(artifact.spec.scaler.mean, outcome.scaler.mean)
    windows = scaled_windows(outcome.data, outcome.scaler)
    positions = np.arange(outcome.data.n_samples)
    before = predict_windows(outcome.network, windows, positions)
    after = predict_windows(artifact.network, windows, positions)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert json.loads((artifact_dir / "features.json").read_text()) == list(
        artifact.spec.feature_names
    )


def test_tampered_or_incomplete_artifacts_are_refused(artifact_dir, outcome) -> None:
    weights = artifact_dir / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        load_artifact(artifact_dir)
    (artifact_dir / "scaler.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(artifact_dir)
    with pytest.raises(ArtifactError, match="exists"):
        save_artifact(artifact_dir, outcome.network, outcome.model_spec())


def test_feature_definition_drift_is_refused(artifact_dir) -> None:
    (artifact_dir / "features.json").write_text(json.dumps(["rsi", "macd"]))
    with pytest.raises(ArtifactError, match="feature"):
        load_artifact(artifact_dir)


def test_predictor_bar_by_bar_equals_predict_batch(artifact_dir, bars) -> None:
    predictor = Predictor.load(artifact_dir)
    batch = predictor.predict_batch(bars, symbol="BTC-USD")
    live: list[ModelPrediction] = []
    for ts, values in zip(bars.index, bars.to_dict("records"), strict=True):
        out = predictor.predict({"ts": ts, "symbol": "BTC-USD", **values})
        if out is not None:
            live.append(out)
    assert len(live) == len(batch) == len(bars) - predictor.warmup_bars + 1
    assert live[0].ts == bars.index[predictor.warmup_bars - 1] == batch.index[0]
    np.testing.assert_allclose([p.value for p in live], batch["probability"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        [p.expected_return for p in live], batch["expected_return"], rtol=1e-4, atol=1e-9
    )
    last = live[-1]
    assert 0.0 <= last.confidence <= 1.0 and last.model == "btc-cnn" and last.horizon == 2
    assert set(last.features) == set(predictor.spec.feature_names)
    direction, ret = last.to_predictions()
    assert direction.kind == PredictionKind.DIRECTION and direction.value == last.value
    assert ret.kind == PredictionKind.RETURN and ret.horizon == "2 bars"


def test_symbols_are_independent_and_priming_matches_streaming(artifact_dir, bars) -> None:
    predictor = Predictor.load(artifact_dir)
    half = len(bars) // 2
    predictor.prime("A", bars.iloc[:half])
    other = bars.assign(close=bars["close"] * 1.01, high=bars["high"] * 1.01)
    records = list(zip(bars.index, bars.to_dict("records"), other.to_dict("records"), strict=True))
    for ts, a, b in records[half:]:
        out_a = predictor.predict({"ts": ts, **a}, symbol="A")
        predictor.predict({"ts": ts, **b}, symbol="B")  # interleaved, must not disturb A
    reference = Predictor.load(artifact_dir).predict_batch(bars, symbol="A")
    assert out_a is not None
    np.testing.assert_allclose(out_a.value, reference["probability"].iloc[-1], rtol=1e-5)


def test_bar_events_and_amended_bars(artifact_dir, bars) -> None:
    predictor = Predictor.load(artifact_dir)
    spec = predictor.spec
    assert "flow" in spec.feature_set.extras  # Bar has no flow columns: neutral values are used
    out = None
    for ts, row in bars.iloc[: predictor.warmup_bars].iterrows():
        bar = Bar("ETH-USD", "1m", ts.to_pydatetime(), row.open, row.high, row.low, row.close,
                  row.volume, vwap=row.vwap)  # fmt: skip
        out = predictor.predict(bar)
    assert out is not None and isinstance(out.ts, datetime) and out.symbol == "ETH-USD"
    assert out.features["flow_imbalance"] == 0.0
    assert predictor.predict(replace(bar, amended=True)) is None
    assert predictor.amended_skipped == 1
    no_ts = {"symbol": "ETH-USD", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    with pytest.raises(FeatureError, match="ts"):
        predictor.predict(no_ts)


def test_predict_batch_splits_a_long_frame_by_symbol(artifact_dir, bars) -> None:
    predictor = Predictor.load(artifact_dir)
    long = pd.concat([bars.assign(symbol="A"), bars.assign(symbol="B")]).sort_index(kind="stable")
    out = predictor.predict_batch(long)
    assert set(out["symbol"]) == {"A", "B"}
    single = predictor.predict_batch(bars, symbol="A")
    np.testing.assert_allclose(out[out["symbol"] == "A"]["probability"], single["probability"])
