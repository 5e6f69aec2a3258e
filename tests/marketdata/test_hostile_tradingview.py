"""TradingView alerts an attacker (or a broken alert template) could send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketdata.tradingview import AlertInvalid, alert_parse
from tests.factories import SymbolFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
ALERT = {"id": "a-1", "ticker": "BTCUSD", "close": "50000", "action": "buy",
         "position_size": "1", "time": "2026-12-07T00:59:00Z"}  # fmt: skip


def test_a_far_future_alert_time_is_refused(db):
    SymbolFactory(name="BTC-USD")
    assert alert_parse(ALERT, now=NOW).alert_time == datetime(2026, 12, 7, 0, 59, tzinfo=UTC)
    assert alert_parse({**ALERT, "time": "2026-12-07T01:04:00Z"}, now=NOW)  # clock skew
    with pytest.raises(AlertInvalid) as refused:
        alert_parse({**ALERT, "time": "9999-12-31T23:59:59Z"}, now=NOW)
    assert list(refused.value.errors) == ["time"] and "future" in refused.value.errors["time"][0]
