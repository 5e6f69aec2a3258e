"""The dashboard's pages and the API docs as a newcomer and an attacker see them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_redoc_is_served_offline_without_third_party_fonts(client):
    user = UserFactory()
    user.groups.add(Group.objects.get(name="viewer"))
    client.force_login(user)
    page = client.get("/api/redoc/").content.decode()
    assert "redoc.standalone.js" in page and "/static/" in page
    assert "fonts.googleapis.com" not in page and "https://" not in page


def test_the_market_page_opens_on_a_symbol_with_bars(client):
    """``make run`` trades BTC-USD and ETH-USD; AVAX-USD sorts first but has no bars."""
    from datetime import UTC, datetime

    from tests.factories import BarFactory, SymbolFactory

    SymbolFactory(name="AVAX-USD")
    btc = SymbolFactory(name="BTC-USD")
    BarFactory(symbol=btc, timeframe="1m", ts=datetime(2026, 1, 5, tzinfo=UTC))
    user = UserFactory()
    user.groups.add(Group.objects.get(name="viewer"))
    client.force_login(user)
    page = client.get("/market/")
    assert page.context["chart"]["symbol"] == "BTC-USD"
    assert page.context["timeframes"] == ["1m"]
    empty = client.get("/market/?symbol=AVAX-USD")
    assert empty.context["chart"]["symbol"] == "AVAX-USD" and empty.context["timeframes"] == ["1m"]
