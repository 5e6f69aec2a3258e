"""Models in the running engine: predictions feed model_signal; activation switches live."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from marketdata.engine.simulator import SimulatedMarket
from models_ml.engine.pipeline import TrainingSpec, run_training
from models_ml.engine.training import TrainConfig
from models_ml.models import MLModel, Prediction
from models_ml.services import model_activate
from tests.runtime_harness import db, running, until
from trading.models import Order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture(scope="module")
def artifact_dirs(tmp_path_factory):
    """Two tiny trained LSTM artifacts on simulated 1s bars (v1 and v2 of one model)."""
    market = SimulatedMarket(["BTC-USD"], seed=5, start=datetime(2024, 1, 1, tzinfo=UTC))
    frame = market.history_bars(
        ["BTC-USD"], "1s", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 40, tzinfo=UTC)
    )
    bars = frame[frame["symbol"] == "BTC-USD"].set_index("ts")
    spec = TrainingSpec(
        kind="lstm",
        hparams={"hidden": 8, "n_layers": 1},
        window=16,
        n_folds=2,
        train=TrainConfig(epochs=1, num_threads=1, batch_size=128),
    )
    dirs = []
    for seed in (0, 1):
        train = TrainConfig(epochs=1, seed=seed, num_threads=1, batch_size=128)
        outcome = run_training(bars, replace(spec, train=train))
        path = tmp_path_factory.mktemp(f"model-v{seed + 1}") / "artifact"
        outcome.save(path, {"name": "btc-1s"})
        dirs.append(path)
    return dirs


def register(name: str, version: int, path, active: bool) -> MLModel:
    """Create the registry row for an artifact."""
    return MLModel.objects.create(
        name=name,
        model_type="lstm",
        version=version,
        artifact_path=str(path),
        symbols=["BTC-USD"],
        timeframe="1s",
        trained_at=timezone.now(),
        active=active,
    )


async def test_model_signal_trades_on_predictions_and_switches_on_activation(paper, artifact_dirs):
    v1 = await db(register)("btc-1s", 1, artifact_dirs[0], True)
    v2 = await db(register)("btc-1s", 2, artifact_dirs[1], False)
    async with running(
        paper,
        strategy="model_signal",
        use_models=True,
        params={"threshold": 0.5, "fraction": "0.1"},
    ) as runtime:
        await until(lambda: runtime._model_ids.get("BTC-USD") == v1.pk, "v1 loaded")
        await until(
            lambda: _has(Prediction.objects.filter(model=v1).exists), "v1 predictions", timeout=90
        )
        # The engine times and counts the live model's predictions (monitoring.metrics)
        labels = {"model": str(v1)}  # the registry row: name and version
        assert REGISTRY.get_sample_value("rrr_ml_inference_seconds_count", labels) > 0
        assert (
            REGISTRY.get_sample_value("rrr_ml_predictions_total", {**labels, "symbol": "BTC-USD"})
            > 0
        )
        await db(model_activate)(model=v2, actor="test")
        await until(lambda: runtime._model_ids.get("BTC-USD") == v2.pk, "v2 switched in")
        await until(
            lambda: _has(Prediction.objects.filter(model=v2).exists), "v2 predictions", timeout=60
        )
        await until(
            lambda: _has(Order.objects.filter(strategy="model_signal").exists),
            "model_signal orders",
            timeout=60,
        )
    stored = await db(lambda: Prediction.objects.filter(model=v1, kind="direction").first())()
    assert 0 <= stored.value <= 1 and stored.features


async def _has(exists) -> bool:
    return await db(exists)()
