"""A restarted simulated stream's trades are stored (they were dropped as duplicates of the
last run's: the simulator numbered its trades from 1 in every process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.engine.events import Trade
from marketdata.engine.simulator import SimulatedMarket

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_restarted_stream_stores_its_trades():
    from marketdata.models import TradeTick
    from marketdata.services import symbols_ensure_defaults
    from marketdata.storage import MarketDataStore

    symbols_ensure_defaults()
    store = MarketDataStore()
    for start in (START, START + timedelta(minutes=27)):  # the first run, then a restart
        market = SimulatedMarket(symbols=["BTC-USD"], seed=42, start=start)
        trades = [e for e in market.events(30) if isinstance(e, Trade)]
        store.write(trades)
        stored = TradeTick.objects.filter(ts__gte=start, ts__lt=start + timedelta(minutes=1))
        assert stored.count() == len(trades) > 0
    store.write(trades)  # the same stream again: nothing twice
    assert TradeTick.objects.count() == 2 * len(trades)
