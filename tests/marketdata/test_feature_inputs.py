"""Feature inputs are joined point-in-time: a value stamped after a bar's close is never used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.feature_inputs import feature_inputs_frame, parse_feature_groups
from marketdata.models import OnchainMetric, Quote, SentimentReading, TradeTick
from tests.factories import SymbolFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 3, 1, tzinfo=UTC)
INDEX = pd.date_range(T0, periods=4, freq="1h", tz="UTC")  # bars close at 01:00 .. 04:00


def onchain(start: datetime, count: int) -> None:
    OnchainMetric.objects.create(
        chain="btc",
        timeframe="1h",
        ts=start,
        tx_count=count,
        volume=100.0,
        active_addresses=1,
        fees=0.1,
        large_transfers=0,
        exchange_inflow=30.0,
        exchange_outflow=10.0,
        first_block=1,
        last_block=2,
        blocks=2,
        source="test",
    )


def test_planted_future_values_are_not_used() -> None:
    btc = SymbolFactory(name="BTC-USD")
    # A reading 1 s after the first bar's close, with an extreme score.
    SentimentReading.objects.create(
        symbol=btc, ts=T0 + timedelta(hours=1, seconds=1), source="t", score=-1.0, confidence=1.0
    )
    SentimentReading.objects.create(
        symbol=btc, ts=T0 + timedelta(minutes=30), source="t", score=0.4, confidence=1.0
    )
    # The on-chain interval 00:30-01:30 is over only at 01:30: not known at the 01:00 close.
    onchain(T0 - timedelta(hours=1), 500)  # 23:00-00:00, known from 00:00
    onchain(T0 + timedelta(minutes=30), 9999)
    Quote.objects.create(
        symbol=btc, venue="v", ts=T0 + timedelta(hours=1), bid=1, ask=2, bid_size=3, ask_size=1
    )
    Quote.objects.create(
        symbol=btc,
        venue="v",
        ts=T0 + timedelta(hours=1, microseconds=1),
        bid=1,
        ask=2,
        bid_size=0.1,
        ask_size=9,
    )
    TradeTick.objects.create(
        symbol=btc,
        venue="v",
        trade_id="1",
        ts=T0 + timedelta(minutes=5),
        price=1,
        size=2,
        side="buy",
    )
    TradeTick.objects.create(
        symbol=btc,
        venue="v",
        trade_id="2",
        ts=T0 + timedelta(hours=1),
        price=1,
        size=5,
        side="sell",
    )  # opens the second bar
    frame = feature_inputs_frame(
        symbol="BTC-USD",
        timeframe="1h",
        index=INDEX,
        groups=["sentiment", "onchain", "book", "flow"],
    )
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["sentiment"] == 0.4 and second["sentiment"] == -1.0
    assert first["onchain_tx_count"] == 500 and second["onchain_tx_count"] == 9999
    assert second["onchain_netflow"] == 20.0
    assert (first["bid_size"], first["ask_size"]) == (3.0, 1.0)  # at the close exactly: known
    assert (second["bid_size"], second["ask_size"]) == (0.1, 9.0)
    assert (first["buy_volume"], first["sell_volume"]) == (2.0, 0.0)
    assert (second["buy_volume"], second["sell_volume"]) == (0.0, 5.0)


def test_no_data_is_unknown_not_invented() -> None:
    SymbolFactory(name="SOL-USD")
    frame = feature_inputs_frame(
        symbol="SOL-USD", timeframe="1h", index=INDEX, groups=["sentiment", "onchain", "book"]
    )
    assert np.isnan(frame.to_numpy()).all()


def test_parse_feature_groups() -> None:
    assert parse_feature_groups("sentiment,price,flow") == ["price", "sentiment", "flow"]
    with pytest.raises(ValueError, match="gossip"):
        parse_feature_groups("price,gossip")
