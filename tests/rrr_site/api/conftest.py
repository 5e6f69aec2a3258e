"""A small trading world for the API tests: two accounts, four roles, fills and snapshots."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday


@dataclass
class World:
    paper: object
    other: object
    users: dict
    btc: object
    eth: object


def _user(name: str, group: str | None, **extra):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    user = UserFactory(username=name, **extra)
    if group:
        # get_or_create: a transactional test before this one may have flushed the migration's rows
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def _fill(account, order, symbol, side, qty, price, fee, ts, n):
    from trading.models import Fill

    return Fill.objects.create(
        order=order, account=account, symbol=symbol, side=side, quantity=Decimal(qty),
        price=Decimal(price), fee=Decimal(fee), venue_trade_id=f"t{n}", ts=ts,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hash test passwords cheaply: the API tests log users in, they do not test PBKDF2."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db, fast_password_hashing) -> World:
    """paper (viewer, trader, admin granted) and other (other_trader granted), with history."""
    from tests.factories import AccountFactory, OrderFactory, SymbolFactory
    from trading.models import PortfolioSnapshot, Position

    btc = SymbolFactory(name="BTC-USD")
    eth = SymbolFactory(name="ETH-USD", reference_price=3000.0)
    paper = AccountFactory(name="paper", cash=Decimal("95000"))
    other = AccountFactory(name="other")
    users = {
        "viewer": _user("viewer", "viewer"),
        "trader": _user("trader", "trader"),
        "admin": _user("admin-role", "admin"),
        "other_trader": _user("other-trader", "trader"),
    }
    for role in ("viewer", "trader", "admin"):
        paper.members.add(users[role])
    other.members.add(users["other_trader"])
    order = OrderFactory(account=paper, symbol=btc, status="filled")
    # A closed long (buy 0.1 @ 50000, sell 0.1 @ 51000) then an open long of 0.1 @ 50000.
    _fill(paper, order, btc, "buy", "0.1", "50000", "5", T0 + dt.timedelta(hours=1), 1)
    _fill(paper, order, btc, "sell", "0.1", "51000", "5.1", T0 + dt.timedelta(hours=2), 2)
    _fill(paper, order, btc, "buy", "0.1", "50000", "5", T0 + dt.timedelta(days=1), 3)
    other_order = OrderFactory(account=other, symbol=eth, status="filled")
    _fill(other, other_order, eth, "buy", "1", "3000", "3", T0 + dt.timedelta(hours=3), 4)
    Position.objects.create(
        account=paper, symbol=btc, quantity=Decimal("0.1"), average_price=Decimal("50000"),
        cost_basis=Decimal("5000"), mark_price=Decimal("52000"), realized_pnl=Decimal("100"),
        unrealized_pnl=Decimal("200"), fees=Decimal("15.1"), updated_at=T0,
    )  # fmt: skip
    # Hourly snapshots over three days: equity 100000 + 10 * hour, a dip on day two.
    snaps = []
    for h in range(72):
        equity = Decimal(100000 + 10 * h - (300 if 30 <= h < 36 else 0))
        snaps.append(
            PortfolioSnapshot(account=paper, ts=T0 + dt.timedelta(hours=h), cash=equity,
                              total_value=equity, equity=equity)
        )  # fmt: skip
    PortfolioSnapshot.objects.bulk_create(snaps)
    return World(paper=paper, other=other, users=users, btc=btc, eth=eth)


def bearer_client(user):
    """Return an APIClient sending a real JWT access token of ``user``."""
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def as_role(world):
    """``as_role("trader")`` -> an APIClient authenticated with that user's JWT."""
    return lambda role: bearer_client(world.users[role] if role != "anonymous" else None)
