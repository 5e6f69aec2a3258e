"""``predict`` names the models that exist and refuses symbols a model was not trained on."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_ml.models import MLModel, Prediction

pytestmark = pytest.mark.django_db
RANGE = ["--start", "2024-03-01", "--end", "2024-03-02"]


def predict(*args: str) -> str:
    out = StringIO()
    call_command("predict", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _model(name: str, symbol: str, active: bool = True) -> MLModel:
    return MLModel.objects.create(
        name=name, model_type="cnn", version=1, symbols=[symbol], timeframe="1h", active=active
    )


def test_an_unknown_model_is_refused_naming_the_models_that_exist():
    _model("BTC-USD-cnn", "BTC-USD")
    _model("ETH-USD-transformer", "ETH-USD", active=False)
    with pytest.raises(CommandError) as caught:
        predict("--model", "lstm", "--symbols", "BTC-USD", *RANGE)
    message = str(caught.value)
    assert "no model named 'lstm'" in message
    assert "BTC-USD-cnn" in message and "ETH-USD-transformer" in message
    with pytest.raises(CommandError, match="no active version"):
        predict("--model", "ETH-USD-transformer", "--symbols", "ETH-USD", *RANGE)


def test_no_registered_model_says_how_to_get_one():
    with pytest.raises(CommandError, match=r"none \(train one: manage.py train\)"):
        predict("--model", "lstm", "--symbols", "BTC-USD", *RANGE)


def test_a_model_trained_on_btc_is_refused_on_eth_without_the_override():
    _model("BTC-USD-cnn", "BTC-USD")
    with pytest.raises(CommandError, match="trained on BTC-USD, not ETH-USD.*--allow-other"):
        predict("--model", "BTC-USD-cnn", "--symbols", "ETH-USD", *RANGE)
    assert not Prediction.objects.exists()
