"""``bars_frame``: one symbol and timeframe, [start, end), UTC index, numeric columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from marketdata.models import Bar
from marketdata.selectors import BAR_COLUMNS, bars_frame, symbol_ids
from tests.factories import SymbolFactory

JAN1 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def store_bars(symbol, timeframe: str, count: int, *, step: timedelta = MINUTE, base=100.0):
    rows = [
        Bar(
            symbol=symbol,
            timeframe=timeframe,
            ts=JAN1 + n * step,
            open=base + n,
            high=base + n + 2,
            low=base + n - 1,
            close=base + n + 1,
            volume=10.0 + n,
            vwap=None if n % 3 == 0 else base + n + 0.5,
            trade_count=n,
        )
        for n in range(count)
    ]
    # Insert in reverse so the selector's ordering is what the test sees, not insertion order.
    Bar.objects.bulk_create(reversed(rows))


@pytest.mark.django_db
def test_bars_frame_returns_one_symbol_and_timeframe_in_a_half_open_range():
    btc, eth = SymbolFactory(name="BTC-USD"), SymbolFactory(name="ETH-USD")
    store_bars(btc, "1m", 30)
    store_bars(eth, "1m", 30, base=5.0)
    store_bars(btc, "5m", 6, step=5 * MINUTE, base=1_000.0)

    frame = bars_frame(
        symbol="BTC-USD", timeframe="1m", start=JAN1 + 5 * MINUTE, end=JAN1 + 15 * MINUTE
    )

    assert list(frame.columns) == BAR_COLUMNS[1:]
    assert frame.index.name == "ts" and str(frame.index.tz) == "UTC"
    assert list(frame.index) == [pd.Timestamp(JAN1 + n * MINUTE) for n in range(5, 15)]
    assert frame["open"].tolist() == [100.0 + n for n in range(5, 15)]
    assert frame["close"].tolist() == [101.0 + n for n in range(5, 15)]
    assert frame["trade_count"].tolist() == list(range(5, 15))
    assert (
        frame.loc[pd.Timestamp(JAN1 + 6 * MINUTE), "vwap"]
        != frame.loc[pd.Timestamp(JAN1 + 6 * MINUTE), "vwap"]
    )  # a missing vwap is NaN
    assert frame.loc[pd.Timestamp(JAN1 + 5 * MINUTE), "vwap"] == 105.5


@pytest.mark.django_db
def test_bars_frame_columns_are_numeric_for_vectorised_use():
    store_bars(SymbolFactory(name="SOL-USD"), "1h", 24, step=timedelta(hours=1))
    frame = bars_frame(symbol="SOL-USD", timeframe="1h", start=JAN1, end=JAN1 + timedelta(days=1))
    assert len(frame) == 24 and frame.index.is_monotonic_increasing and frame.index.is_unique
    for column in ("open", "high", "low", "close", "volume", "vwap"):
        assert frame[column].dtype == np.float64, column
    assert np.issubdtype(frame["trade_count"].dtype, np.integer)
    returns = np.log(frame["close"]).diff().dropna()
    assert len(returns) == 23 and (returns > 0).all()


@pytest.mark.django_db
def test_bars_frame_is_empty_but_well_formed_when_nothing_matches():
    SymbolFactory(name="BTC-USD")
    frame = bars_frame(symbol="BTC-USD", timeframe="1m", start=JAN1, end=JAN1 + MINUTE)
    assert frame.empty and list(frame.columns) == BAR_COLUMNS[1:]
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    unknown = bars_frame(symbol="NOPE-USD", timeframe="1m", start=JAN1, end=JAN1 + MINUTE)
    assert unknown.empty


@pytest.mark.django_db
def test_bars_frame_accepts_non_utc_bounds():
    store_bars(SymbolFactory(name="BTC-USD"), "1m", 10)
    start = datetime(2024, 1, 1, 1, 3, tzinfo=ZoneInfo("Europe/Paris"))  # 00:03 UTC
    frame = bars_frame(symbol="BTC-USD", timeframe="1m", start=start, end=start + 2 * MINUTE)
    assert list(frame.index) == [pd.Timestamp(JAN1 + 3 * MINUTE), pd.Timestamp(JAN1 + 4 * MINUTE)]


@pytest.mark.django_db
def test_symbol_ids_maps_names():
    btc, eth = SymbolFactory(name="BTC-USD"), SymbolFactory(name="ETH-USD")
    assert symbol_ids(["ETH-USD"]) == {"ETH-USD": eth.pk}
    assert symbol_ids() == {"BTC-USD": btc.pk, "ETH-USD": eth.pk}
