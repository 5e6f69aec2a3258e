"""Registry through the ORM: register -> load round trip, versions on disk, active model lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from models_ml.engine.inference import Predictor
from models_ml.engine.pipeline import TrainingSpec, run_training
from models_ml.engine.registry import ModelArtifact
from models_ml.engine.training import TrainConfig
from models_ml.models import MLModel
from models_ml.selectors import active_model_for, model_artifact_dir
from models_ml.services import model_activate, model_register
from tests.factories import MLModelFactory
from tests.models_ml.engine.synthetic import planted_bars

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return settings.MODELS_DIR


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return planted_bars(900, seed=11)


@pytest.fixture(scope="module")
def outcome(bars):
    spec = TrainingSpec(
        kind="lstm",
        hparams={"hidden": 8, "n_layers": 1},
        window=16,
        n_folds=2,
        train=TrainConfig(epochs=2, batch_size=128, seed=3, num_threads=1),
    )
    return run_training(bars, spec)


def in_memory_predictor(outcome) -> Predictor:
    """A predictor over the trained network itself, never written to disk."""
    return Predictor(ModelArtifact(outcome.model_spec(), outcome.network, "", Path(".")))


@pytest.mark.django_db
def test_register_then_load_through_the_orm_gives_identical_predictions(outcome, bars, models_dir):
    model = model_register(outcome=outcome, name="btc-lstm", symbols=["BTC-USD"], timeframe="1m")

    stored = MLModel.objects.get(pk=model.pk)
    assert (stored.version, stored.active, stored.model_type) == (1, False, "lstm")
    assert stored.artifact_path == "btc-lstm/v1"  # relative: MODELS_DIR may move between hosts
    assert stored.feature_names == list(outcome.feature_set.names)
    assert stored.metrics["verdict"] == outcome.report.verdict
    loaded = Predictor.load(model_artifact_dir(stored))
    assert loaded.artifact.checksum == stored.checksum

    fresh = in_memory_predictor(outcome)
    batch_loaded, batch_fresh = loaded.predict_batch(bars), fresh.predict_batch(bars)
    assert len(batch_loaded) > 800
    pd.testing.assert_frame_equal(batch_loaded, batch_fresh, check_exact=True)
    # live path too: the same bars one at a time give bit-identical predictions
    tail = bars.iloc[-120:]
    for predictor in (loaded, fresh):
        predictor.prime("BTC-USD", bars.iloc[:-120])
    for ts, row in tail.iterrows():
        a = loaded.predict({"ts": ts, **row.to_dict()}, symbol="BTC-USD")
        b = fresh.predict({"ts": ts, **row.to_dict()}, symbol="BTC-USD")
        assert (a.value, a.expected_return) == (b.value, b.expected_return)


@pytest.mark.django_db
def test_versions_count_up_past_rows_and_directories(outcome, models_dir):
    (models_dir / "btc-lstm" / "v3").mkdir(parents=True)  # left by a crashed run, no row
    first = model_register(outcome=outcome, name="btc-lstm", symbols=["BTC-USD"], timeframe="1m")
    second = model_register(outcome=outcome, name="btc-lstm", symbols=["BTC-USD"], timeframe="1m")
    assert (first.version, second.version) == (4, 5)
    assert model_artifact_dir(second) == models_dir / "btc-lstm" / "v5"
    assert first.checksum == second.checksum  # same network, same weights file


def test_model_artifact_dir_keeps_absolute_paths(models_dir):
    assert model_artifact_dir(MLModel(artifact_path="/srv/models/x/v1")) == Path("/srv/models/x/v1")
    assert model_artifact_dir(MLModel(artifact_path="x/v1")) == models_dir / "x" / "v1"
    with pytest.raises(FileNotFoundError):
        model_artifact_dir(MLModel(name="x", version=1))


@pytest.mark.django_db
def test_active_model_for_picks_by_name_then_by_symbol_and_timeframe():
    btc_v1 = MLModelFactory(
        name="btc-lstm", version=1, symbols=["BTC-USD"], active=True, trained_at=T0
    )
    btc_v2 = MLModelFactory(name="btc-lstm", version=2, symbols=["BTC-USD"], trained_at=T0)
    multi = MLModelFactory(
        name="multi",
        version=1,
        symbols=["BTC-USD", "ETH-USD"],
        active=True,
        trained_at=T0 + timedelta(days=1),
    )
    five = MLModelFactory(
        name="btc-5m", version=1, symbols=["BTC-USD"], timeframe="5m", active=True, trained_at=T0
    )
    MLModelFactory(name="sol", version=1, symbols=["SOL-USD"], trained_at=T0)

    assert active_model_for(name="btc-lstm", symbol="BTC-USD", timeframe="1m") == btc_v1
    # a named model is the caller's choice, whatever symbols it was trained on
    assert active_model_for(name="btc-lstm", symbol="ETH-USD", timeframe="1m") == btc_v1
    assert active_model_for(symbol="BTC-USD", timeframe="1m") == multi  # newest trained
    assert active_model_for(symbol="ETH-USD", timeframe="1m") == multi
    assert active_model_for(symbol="BTC-USD", timeframe="5m") == five
    assert active_model_for(symbol="SOL-USD", timeframe="1m") is None  # not active
    assert active_model_for(name="sol", symbol="SOL-USD", timeframe="1m") is None
    assert active_model_for(name="nope", symbol="BTC-USD", timeframe="1m") is None

    model_activate(model=btc_v2, actor="test")
    assert active_model_for(name="btc-lstm", symbol="BTC-USD", timeframe="1m") == btc_v2
    btc_v1.refresh_from_db()
    assert not btc_v1.active


@pytest.mark.django_db
def test_predict_command_backfills_predictions_in_batch_without_look_ahead(tmp_path):
    from datetime import UTC, datetime
    from io import StringIO

    from django.core.management import call_command

    from models_ml.engine.inference import Predictor
    from models_ml.models import MLModel, Prediction
    from models_ml.selectors import model_artifact_dir

    out = StringIO()
    call_command(
        "train",
        "--model",
        "lstm",
        "--symbols",
        "BTC-USD",
        "--timeframe",
        "1h",
        "--start",
        "2024-01-01",
        "--end",
        "2024-04-01",
        "--epochs",
        "1",
        "--window",
        "32",
        "--folds",
        "2",
        "--source",
        "sim",
        "--activate",
        "--force-activate",  # a 1-epoch model may well have no edge; this test is about predict
        "--no-progress",
        stdout=out,
        stderr=StringIO(),
    )
    model = MLModel.objects.get(active=True)
    call_command(
        "predict",
        "--model",
        model.name,
        "--symbols",
        "BTC-USD",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-05",
        "--source",
        "sim",
        "--store",
        stdout=out,
    )
    rows = Prediction.objects.filter(model=model, kind="direction").order_by("ts")
    assert rows.count() == 4 * 24
    assert rows.first().ts == datetime(2024, 3, 1, tzinfo=UTC) and rows.first().features
    # The same bar predicted live (streaming from far back) gives the same probability.
    from marketdata.selectors import bars_frame

    predictor = Predictor.load(model_artifact_dir(model))
    history = bars_frame(
        symbol="BTC-USD",
        timeframe="1h",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 3, 1, 1, tzinfo=UTC),
        simulated=True,
    )
    live = [
        predictor.predict({"ts": ts, **row}, "BTC-USD")
        for ts, row in zip(history.index, history.to_dict("records"), strict=True)
    ][-1]
    assert live.value == pytest.approx(rows.first().value, rel=1e-5)
