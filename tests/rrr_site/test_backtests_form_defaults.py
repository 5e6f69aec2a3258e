"""The Backtests page's launch form defaults to a run that works for a newcomer.

It showed the first names sorted: bollinger_breakout on AVAX-USD with stored bars, which a fresh
install does not have. Now: sma_cross, BTC-USD, the simulated market, and the API takes them.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group

from tests.factories import SymbolFactory, UserFactory

pytestmark = pytest.mark.django_db


def form_defaults(page: str) -> dict:
    form = re.search(r'<form class="inline" id="launch".*?</form>', page, re.S).group(0)

    def options(name: str) -> str:
        return re.search(rf'<select name="{name}">(.*?)</select>', form, re.S).group(1)

    strategy = re.findall(r"<option selected>([^<]+)<", options("strategy"))
    source = re.findall(r'<option value="(\w+)" selected>', options("source"))
    symbols = re.search(r'<input name="symbols" value="([^"]*)"', form).group(1)
    return {"strategy": strategy, "symbols": symbols, "source": source}


def test_the_form_defaults_to_sma_cross_on_btc_with_simulated_bars(client):
    for name in ("AVAX-USD", "BTC-USD", "ETH-USD"):
        SymbolFactory(name=name)
    user = UserFactory(username="newcomer")
    user.groups.add(Group.objects.get_or_create(name="trader")[0])
    client.force_login(user)
    page = client.get("/backtests/").content.decode()
    assert form_defaults(page) == {
        "strategy": ["sma_cross"],
        "symbols": "BTC-USD",
        "source": ["sim"],
    }
    # What the form posts with those defaults is queued (not refused for want of stored bars).
    form = {"strategy": "sma_cross", "symbols": ["BTC-USD"], "timeframe": "1h", "source": "sim",
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-08T00:00:00Z"}  # fmt: skip
    response = client.post("/api/v1/backtests", form, content_type="application/json")
    assert response.status_code in (201, 202), response.content
