"""The performance page's trade tally: extended refresh by refresh, it gives the same trade metrics
as rebuilding every round trip from all fills (``performance_of``), through flips, partial
closes, several symbols, late inserts and a reset database."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import AccountFactory, OrderFactory, SymbolFactory
from tests.rrr_site.trade_tally_helpers import reference
from trading import trade_tally
from trading.models import Fill, TradeTally

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_tallies():
    trade_tally._TALLIES.clear()
    yield
    trade_tally._TALLIES.clear()


def _fills(account, symbols, n: int, *, start: int, rng: random.Random) -> None:
    """Store ``n`` fills: random sides and sizes, so positions flip, close and scale."""
    order = OrderFactory(account=account, symbol=symbols[0], status="filled")
    Fill.objects.bulk_create(
        Fill(order=order, account=account, symbol=rng.choice(symbols),
             side=rng.choice(["buy", "sell"]), quantity=Decimal(rng.choice([1, 1, 2, 3])),
             price=Decimal(100 + rng.randint(-20, 20)), fee=Decimal("0.1"),
             venue_trade_id=f"t{start + i}", ts=T0 + timedelta(minutes=start + i))
        for i in range(n)
    )  # fmt: skip


def _same(got: dict, want: dict) -> bool:
    def norm(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    return all(norm(got[k]) == pytest.approx(norm(want[k]), rel=1e-9) for k in want)


def test_a_tally_extended_load_by_load_matches_a_full_rebuild():
    account = AccountFactory(name="desk")
    symbols = [SymbolFactory(name="BTC-USD"), SymbolFactory(name="ETH-USD")]
    rng = random.Random(7)
    start = 0
    for batch in (300, 1, 0, 57, 400):
        _fills(account, symbols, batch, start=start, rng=rng)
        start += batch
        got, note = trade_tally.trade_tally_extend(account=account)
        assert note == "" and _same(got, reference(account)), batch
    assert got["trades"] >= 20  # round trips were closed (flat to flat and through flips)


def test_a_late_insert_or_a_reset_starts_the_tally_again():
    account = AccountFactory(name="desk")
    symbols = [SymbolFactory(name="BTC-USD")]
    rng = random.Random(11)
    _fills(account, symbols, 200, start=1000, rng=rng)
    trade_tally.trade_tally_extend(account=account)
    _fills(account, symbols, 40, start=0, rng=rng)  # stamped before everything tallied
    got, _ = trade_tally.trade_tally_extend(account=account)
    assert _same(got, reference(account))
    Fill.objects.filter(account=account).delete()  # e.g. a database restored from a backup
    _fills(account, symbols, 120, start=5000, rng=rng)
    got, _ = trade_tally.trade_tally_extend(account=account)
    assert _same(got, reference(account))


def test_the_performance_page_shows_trade_metrics_beside_the_rest(client):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory
    from trading.models import PortfolioSnapshot

    account = AccountFactory(name="desk")
    _fills(account, [SymbolFactory(name="BTC-USD")], 50, start=0, rng=random.Random(5))
    for hour in range(5):
        PortfolioSnapshot.objects.create(
            account=account, ts=T0 + timedelta(hours=hour), cash=Decimal(100000),
            equity=Decimal(100000 + hour), total_value=Decimal(100000 + hour), drawdown=0.0,
        )  # fmt: skip
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    account.members.add(user)
    client.force_login(user)
    assert trade_tally.trade_tallies_refresh() == [account.pk]  # the every-minute schedule
    page = client.get("/performance/")
    rows = {name: value for name, value, _ in page.context["metric_rows"]}
    want = reference(account)
    assert rows["trades"] == f"{want['trades']:.4f}" and rows["win_rate"] != "—"
    html = page.content.decode()
    assert "left out" not in html
    stored = TradeTally.objects.get(account=account).figures_at
    assert f"tallied at {stored:%Y-%m-%d %H:%M:%S} UTC" in html and "every fill counted" in html
    _fills(account, [SymbolFactory(name="BTC-USD")], 10, start=50, rng=random.Random(6))
    html = client.get("/performance/").content.decode()  # as stored; the refresh is queued
    assert "fills came since: being tallied in the background" in html
