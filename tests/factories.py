"""factory_boy factories for the ORM models used across tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from marketdata.models import Bar, Symbol
from models_ml.models import MLModel
from risk.models import RiskLimit
from trading.models import Account, Order


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")
    password = factory.django.Password("correct-horse-battery-staple")


class SymbolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Symbol
        django_get_or_create = ("name",)

    name = "BTC-USD"
    base = factory.LazyAttribute(lambda o: o.name.split("-")[0])
    quote = factory.LazyAttribute(lambda o: o.name.split("-")[1])
    tick_size = Decimal("0.01")
    lot_size = Decimal("0.00001")
    reference_price = 50000.0


class BarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bar

    symbol = factory.SubFactory(SymbolFactory)
    timeframe = "1m"
    ts = factory.Sequence(
        lambda n: dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
    )
    open = 100.0
    high = 101.0
    low = 99.0
    close = 100.5
    volume = 10.0


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"acct{n}")
    initial_capital = Decimal("100000")
    cash = factory.LazyAttribute(lambda o: o.initial_capital)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    account = factory.SubFactory(AccountFactory)
    symbol = factory.SubFactory(SymbolFactory)
    side = "buy"
    type = "market"
    quantity = Decimal("0.5")
    status = "open"
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


class RiskLimitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RiskLimit

    scope = "global"
    kind = "max_order_notional"
    value = Decimal("10000")
    action = "reject"


class MLModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MLModel

    name = "btc-direction"
    model_type = "lstm"
    version = factory.Sequence(lambda n: n + 1)
