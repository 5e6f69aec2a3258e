"""``runtrader --model`` refuses symbols the model was not trained on unless told otherwise."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def runtrader(*args: str) -> None:
    call_command("runtrader", *args, stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_a_model_trained_on_btc_is_refused_on_eth_without_the_override() -> None:
    from models_ml.models import MLModel

    MLModel.objects.create(name="BTC-USD-lstm", model_type="lstm", version=1,
                           symbols=["BTC-USD"], timeframe="1m", active=True)  # fmt: skip
    with pytest.raises(CommandError, match="trained on BTC-USD, not ETH-USD.*--allow-other"):
        runtrader("--paper", "--symbols", "ETH-USD", "--model", "BTC-USD-lstm")
    # Allowed: the check passes (the run then stops on the next bad flag here).
    with pytest.raises(CommandError, match="no account"):
        runtrader("--paper", "--symbols", "ETH-USD", "--model", "BTC-USD-lstm",
                  "--allow-other-symbol", "--account", "nobody")  # fmt: skip
