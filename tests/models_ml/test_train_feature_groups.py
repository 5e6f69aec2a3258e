"""``train --feature-groups``: inputs joined point-in-time, each group's contribution reported."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from marketdata.models import SentimentReading, Symbol
from marketdata.services import bars_load
from models_ml.models import MLModel

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(180)]

T0, T1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, 2, tzinfo=UTC)
ARGS = [
    "--model",
    "cnn",
    "--hparams",
    '{"channels": 8, "n_layers": 2}',
    "--symbols",
    "BTC-USD",
    "--start",
    "2024-01-01",
    "--end",
    "2024-01-03T02:00",
    "--epochs",
    "1",
    "--folds",
    "2",
    "--window",
    "16",
    "--source",
    "sim",
]


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"


def plant_informed_sentiment() -> None:
    """A reading at each bar's close whose sign is the next bar's direction (known at the close
    by construction here, so the sentiment group must show a large contribution)."""
    bars, _ = bars_load(symbol="BTC-USD", timeframe="1m", start=T0, end=T1, source="sim")
    nxt = np.sign(np.diff(np.log(bars["close"].to_numpy())))
    symbol = Symbol.objects.get(name="BTC-USD")
    SentimentReading.objects.bulk_create(
        SentimentReading(
            symbol=symbol,
            ts=ts + timedelta(minutes=1),
            source="test",
            score=0.8 * float(s),
            confidence=1.0,
        )
        for ts, s in zip(bars.index[:-1], nxt, strict=True)
    )


def test_feature_groups_are_trained_on_and_reported():
    plant_informed_sentiment()
    out = io.StringIO()
    call_command(
        "train",
        *ARGS,
        "--feature-groups",
        "flow,sentiment",
        "--no-progress",
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    model = MLModel.objects.get()
    assert "sentiment" in model.feature_names and "flow_imbalance" in model.feature_names
    report = model.metrics["feature_groups"]
    sets = {row["features"]: row for row in report["sets"]}
    assert report["groups"] == ["price", "sentiment", "flow"]
    assert sets["price+sentiment"]["delta_auc"] > 0.3
    assert sets["price+flow"]["flagged"]  # no trades stored: nothing to measure
    assert "feature groups, logistic walk-forward" in text
    assert "little data: not meaningful" in text
    check_live_inference_joins_the_same_inputs_point_in_time(model)


def test_unknown_feature_group_is_refused():
    with pytest.raises(CommandError, match="gossip"):
        call_command(
            "train",
            *ARGS,
            "--feature-groups",
            "price,gossip",
            "--no-progress",
            stdout=io.StringIO(),
        )


def check_live_inference_joins_the_same_inputs_point_in_time(model: MLModel) -> None:
    from marketdata.engine.events import Bar as EngineBar
    from marketdata.feature_inputs import feature_inputs_frame
    from marketdata.selectors import bars_frame
    from models_ml.engine.inference import Predictor
    from models_ml.live_inputs import LiveInputsPredictor, with_live_inputs
    from models_ml.selectors import model_artifact_dir

    bars = bars_frame(symbol="BTC-USD", timeframe="1m", start=T0, end=T1, simulated=True)
    # Training's path: every bar joined to its inputs as of its close.
    joined = bars.join(
        feature_inputs_frame(
            symbol="BTC-USD", timeframe="1m", index=bars.index, groups=["sentiment", "flow"]
        )
    )
    expected = Predictor.load(model_artifact_dir(model)).predict_batch(joined, "BTC-USD")
    # Live path: the last 5 bars one by one, inputs read from the database beforehand.
    live = with_live_inputs(
        Predictor.load(model_artifact_dir(model)), symbol="BTC-USD", timeframe="1m"
    )
    assert isinstance(live, LiveInputsPredictor)
    live.refresh(T1)
    # A reading planted 30 s after the last bar's close must not change its prediction.
    SentimentReading.objects.create(
        symbol=Symbol.objects.get(name="BTC-USD"),
        ts=T1 + timedelta(seconds=30),
        source="test",
        score=-1.0,
        confidence=1.0,
    )
    live.refresh(T1 + timedelta(minutes=1))
    live.prime("BTC-USD", bars.iloc[:-5])
    for ts, row in bars.iloc[-5:].iterrows():
        bar = EngineBar(
            symbol="BTC-USD",
            timeframe="1m",
            ts=ts.to_pydatetime(),
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            vwap=row.vwap,
        )
        got = live.predict(bar)
        assert got is not None
        assert abs(got.value - expected.loc[ts, "probability"]) < 1e-5
        assert got.features["sentiment"] == joined.loc[ts, "sentiment"] != -1.0
