"""Market-data endpoints: symbols, bar pages with cursors and resampling, quote and book."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from marketdata.models import Bar, BookSnapshot, Quote
from tests.factories import SymbolFactory, UserFactory

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


@pytest.fixture
def viewer(db):
    user = UserFactory(username="v")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def btc(db):
    symbol = SymbolFactory(name="BTC-USD")
    Bar.objects.bulk_create(
        Bar(symbol=symbol, timeframe="1m", ts=T0 + dt.timedelta(minutes=i), open=100 + i,
            high=101 + i, low=99 + i, close=100.5 + i, volume=1, vwap=100 + i, trade_count=2)
        for i in range(23)
    )  # fmt: skip
    return symbol


def test_bar_pages_follow_the_cursor_to_the_end(viewer, btc):
    params, seen, pages = {"start": T0.isoformat(), "limit": 10}, [], 0
    while params:
        page = viewer.get("/api/v1/marketdata/symbols/BTC-USD/bars", params).json()
        seen += [b["ts"] for b in page["bars"]]
        pages += 1
        params = {"limit": 10, "cursor": page["next_cursor"]} if page["next_cursor"] else None
    assert pages == 3 and len(seen) == len(set(seen)) == 23


def test_resampled_pages_hold_only_complete_windows(viewer, btc):
    base = "/api/v1/marketdata/symbols/BTC-USD/bars"
    first = viewer.get(base, {"start": T0.isoformat(), "resample": "5m", "limit": 2}).json()
    assert first["timeframe"] == "5m" and len(first["bars"]) == 2
    bar = first["bars"][0]
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (100, 105, 99, 104.5)
    assert (bar["volume"], bar["trade_count"]) == (5, 10)
    assert first["next_cursor"].startswith("2026-01-05T00:10:00")
    rest = viewer.get(base, {"cursor": first["next_cursor"], "resample": "5m"}).json()
    assert [b["trade_count"] for b in rest["bars"]] == [10, 10, 6]  # 00:20 holds three bars
    assert rest["next_cursor"] is None
    bad = viewer.get(base, {"timeframe": "5m", "resample": "1m"})
    assert bad.status_code == 400 and "resample" in bad.json()
    assert viewer.get(base, {"cursor": "yesterday"}).status_code == 400
    assert viewer.get(base, {"limit": 10_001}).status_code == 400
    assert viewer.get("/api/v1/marketdata/symbols/NOPE/bars").status_code == 404


def test_quote_book_and_symbols(viewer, btc):
    base = "/api/v1/marketdata/symbols/BTC-USD"
    assert viewer.get(f"{base}/quote").status_code == 404
    Quote.objects.create(symbol=btc, venue="sim", ts=T0, bid=99, bid_size=1, ask=101, ask_size=2)
    BookSnapshot.objects.create(symbol=btc, venue="sim", ts=T0, depth=1, bids=[[99, 1]],
                                asks=[[101, 2]])  # fmt: skip
    assert viewer.get(f"{base}/quote").json()["ask"] == 101
    assert viewer.get(f"{base}/book").json()["bids"] == [[99, 1]]
    names = [s["name"] for s in viewer.get("/api/v1/marketdata/symbols").json()]
    assert names == ["BTC-USD"]
    assert APIClient().get("/api/v1/marketdata/symbols").status_code == 401


def test_bars_default_to_one_origin_the_simulated_when_none_observed(viewer, db):
    """``make run`` stores only simulated bars: the README's bars call must not answer empty."""
    symbol = SymbolFactory(name="SIM-USD")

    def bar(minute: int, simulated: bool) -> Bar:
        return Bar(symbol=symbol, timeframe="1m", ts=T0 + dt.timedelta(minutes=minute),
                   open=1, high=3, low=1, close=1.5 + simulated, volume=1, trade_count=1,
                   simulated=simulated)  # fmt: skip

    Bar.objects.bulk_create(bar(i, True) for i in range(3))
    url = "/api/v1/marketdata/symbols/SIM-USD/bars"
    closes = [b["close"] for b in viewer.get(url).json()["bars"]]
    assert closes == [2.5, 2.5, 2.5]
    assert viewer.get(url + "?simulated=false").json()["bars"] == []
    Bar.objects.bulk_create(bar(i, False) for i in range(3, 5))  # observed bars arrive
    assert [b["close"] for b in viewer.get(url).json()["bars"]] == [1.5, 1.5]  # never mixed
    assert len(viewer.get(url + "?simulated=true").json()["bars"]) == 3
