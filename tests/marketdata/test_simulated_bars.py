"""Simulated bars never stand in for real history: stored marked, read only when asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.engine.events import Bar as BarEvent
from marketdata.models import Bar
from marketdata.selectors import bars_frame
from marketdata.services import MarketDataUnavailable, bars_load, symbols_ensure
from marketdata.storage import MarketDataStore

JAN1 = datetime(2024, 1, 1, tzinfo=UTC)
JAN2 = JAN1 + timedelta(days=1)

pytestmark = pytest.mark.django_db


def test_missing_real_bars_are_an_error_that_says_how_to_get_them_and_nothing_is_stored():
    with pytest.raises(MarketDataUnavailable) as caught:
        bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2)
    message = str(caught.value)
    assert "backfill --source" in message and "--source sim" in message
    assert "BTC-USD" in message and "1h" in message
    assert not Bar.objects.exists()  # no silent simulation under the real name


def test_sim_bars_are_stored_marked_simulated_and_real_readers_never_see_them():
    bars, origin = bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2, source="sim")
    assert origin == "simulated" and len(bars) == 24
    assert Bar.objects.filter(simulated=True).count() == 24
    assert not Bar.objects.filter(simulated=False).exists()
    assert bars_frame(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2).empty
    with pytest.raises(MarketDataUnavailable):  # still no real history afterwards
        bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2)
    again, origin = bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2, source="sim")
    assert origin == "simulated" and again.equals(bars)  # read back, not regenerated
    assert Bar.objects.count() == 24


def test_a_venue_bar_and_a_simulated_bar_of_the_same_window_coexist():
    symbols_ensure(["BTC-USD"])
    bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2, source="sim")
    real = BarEvent("BTC-USD", "1h", JAN1, 50.0, 51.0, 49.0, 50.5, 3.0, venue="coinbase")
    MarketDataStore().write([real])
    frame, origin = bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2)
    assert origin == "database" and len(frame) == 1 and frame["close"].iloc[0] == 50.5
    simulated = bars_frame(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2, simulated=True)
    assert len(simulated) == 24 and simulated["close"].iloc[0] != 50.5  # untouched


def test_the_dashboards_chart_never_mixes_simulated_and_venue_bars():
    from rrr_site.pages.selectors import chart_bars

    symbol = symbols_ensure(["BTC-USD"])[0]
    bars_load(symbol="BTC-USD", timeframe="1h", start=JAN1, end=JAN2, source="sim")
    simulated = chart_bars(symbol=symbol, timeframe="1h")
    assert len(simulated) == 24  # a simulated session's chart: its own bars
    real = BarEvent("BTC-USD", "1h", JAN2, 50.0, 51.0, 49.0, 50.5, 3.0, venue="coinbase")
    MarketDataStore().write([real])
    shown = chart_bars(symbol=symbol, timeframe="1h")
    assert [b["close"] for b in shown] == [50.5]  # venue bars exist: only they are shown


def test_a_sim_range_wider_than_the_stored_bars_is_completed_not_cut_to_them():
    """``strategy check`` stores 20 days; a later 45-day ``--source sim`` run got those 20 only."""
    bars_load(
        symbol="BTC-USD", timeframe="1h", start=JAN2, end=JAN2 + timedelta(days=1), source="sim"
    )
    wide_end = JAN1 + timedelta(days=3)
    bars, origin = bars_load(
        symbol="BTC-USD", timeframe="1h", start=JAN1, end=wide_end, source="sim"
    )
    assert origin == "simulated" and len(bars) == 72
    assert bars.index[0] == JAN1 and bars.index[-1] == wide_end - timedelta(hours=1)
    fresh = Bar.objects.filter(simulated=True)
    assert fresh.count() == 72  # the stored middle day is kept, the rest added once
    # The same (seed, window) is the same bar whatever range asked first: no seam.
    from marketdata.engine.simulator import SimulatedMarket

    whole = SimulatedMarket(seed=42).history_bars("BTC-USD", "1h", JAN1, wide_end)
    assert list(bars["close"]) == list(whole["close"].astype(float))
