"""Database constraints reject bad rows on every backend."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from marketdata.models import SentimentReading
from models_ml.models import MLModel
from tests.factories import AccountFactory, BarFactory, MLModelFactory, OrderFactory, SymbolFactory
from trading.models import Fill, Position

pytestmark = pytest.mark.django_db
TS = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def rejects(factory, **kwargs) -> bool:
    """Return True if creating the row raises IntegrityError."""
    try:
        with transaction.atomic():
            factory(**kwargs)
    except IntegrityError:
        return True
    return False


def test_valid_bar_is_accepted():
    bar = BarFactory(ts=TS)
    assert bar.pk


@pytest.mark.parametrize(
    "ohlc",
    [
        {"open": 100, "high": 98, "low": 99, "close": 100},  # high < low
        {"open": 102, "high": 101, "low": 99, "close": 100},  # high < open
        {"open": 100, "high": 101, "low": 99, "close": 101.5},  # high < close
        {"open": 100, "high": 101, "low": 100.5, "close": 100.7},  # low > open
        {"open": 0.5, "high": 1, "low": 0, "close": 0.6},  # non-positive low
    ],
)
def test_inconsistent_ohlc_is_rejected(ohlc):
    assert rejects(BarFactory, ts=TS, **ohlc)


def test_negative_volume_is_rejected():
    assert rejects(BarFactory, ts=TS, volume=-1)


def test_duplicate_bar_is_rejected():
    symbol = SymbolFactory()
    BarFactory(symbol=symbol, ts=TS)
    assert rejects(BarFactory, symbol=symbol, ts=TS)
    assert not rejects(BarFactory, symbol=symbol, ts=TS, timeframe="5m")


@pytest.mark.parametrize("quantity", [Decimal("0"), Decimal("-1")])
def test_non_positive_order_quantity_is_rejected(quantity):
    assert rejects(OrderFactory, quantity=quantity)


def test_overfilled_order_is_rejected():
    assert rejects(OrderFactory, quantity=Decimal("1"), filled_quantity=Decimal("1.0001"))


def test_limit_order_needs_price_and_stop_needs_stop_price():
    assert rejects(OrderFactory, type="limit", price=None)
    assert rejects(OrderFactory, type="stop", stop_price=None)
    assert rejects(OrderFactory, type="trailing_stop")
    assert not rejects(OrderFactory, type="limit", price=Decimal("100"))


def test_duplicate_client_order_id_is_rejected():
    cid = uuid.uuid4()
    OrderFactory(client_order_id=cid)
    assert rejects(OrderFactory, client_order_id=cid)


def test_fill_is_recorded_once_per_venue_trade_id():
    order = OrderFactory()
    kwargs = {
        "order": order,
        "account": order.account,
        "symbol": order.symbol,
        "side": "buy",
        "quantity": Decimal("0.1"),
        "price": Decimal("100"),
        "venue_trade_id": "t1",
        "ts": TS,
    }
    Fill.objects.create(**kwargs)
    assert rejects(Fill.objects.create, **kwargs)
    assert rejects(Fill.objects.create, **{**kwargs, "venue_trade_id": "t2", "quantity": -1})


def test_one_position_per_account_and_symbol():
    account, symbol = AccountFactory(), SymbolFactory()
    Position.objects.create(account=account, symbol=symbol, updated_at=TS)
    assert rejects(Position.objects.create, account=account, symbol=symbol, updated_at=TS)


def test_paper_account_cannot_point_at_a_live_venue():
    assert rejects(AccountFactory, mode="paper", venue="binance")
    assert not rejects(AccountFactory, mode="live", venue="binance")


def test_sentiment_ranges_are_enforced():
    symbol = SymbolFactory()
    make = SentimentReading.objects.create
    assert rejects(make, symbol=symbol, ts=TS, source="x", score=1.5, confidence=0.5)
    assert rejects(make, symbol=symbol, ts=TS, source="x", score=0.5, confidence=-0.1)
    assert not rejects(make, symbol=symbol, ts=TS, source="x", score=-1, confidence=1)


def test_only_one_active_version_per_model_name():
    MLModelFactory(name="m", version=1, active=True)
    assert rejects(MLModelFactory, name="m", version=2, active=True)
    MLModelFactory(name="m", version=3, active=False)
    assert MLModel.objects.filter(name="m").count() == 2
