"""The stats' feed lag is how long ago the newest stored 1m bar closed, not when it opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.engine.events import Bar as BarEvent
from marketdata.services import symbols_ensure
from marketdata.storage import MarketDataStore
from monitoring.stats_selectors import api_stats
from trading.models import Account

pytestmark = pytest.mark.django_db

OPEN = datetime(2026, 1, 2, 9, 59, tzinfo=UTC)


def test_a_bar_that_just_closed_is_no_lag_and_the_lag_grows_from_its_close():
    symbols_ensure(["BTC-USD"])
    bar = BarEvent("BTC-USD", "1m", OPEN, 50.0, 51.0, 49.0, 50.5, 3.0, venue="coinbase")
    MarketDataStore().write([bar])
    accounts = Account.objects.all()
    closed = OPEN + timedelta(minutes=1)
    # A live feed storing each bar as it closes was shown 60-120 s behind (bar start to now).
    assert api_stats(accounts=accounts, now=closed)["feed_lag_seconds"] == 0.0
    later = api_stats(accounts=accounts, now=closed + timedelta(seconds=95))
    assert later["latest_bar"] == OPEN and later["feed_lag_seconds"] == 95.0
    # A clock behind the bar's close (another host's clock) is no negative lag.
    assert api_stats(accounts=accounts, now=OPEN + timedelta(seconds=30))["feed_lag_seconds"] == 0.0
