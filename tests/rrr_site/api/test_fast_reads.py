"""The API's hand-written reads answer exactly what the ORM and the documented serializers do.

``trading.portfolio_sql`` (portfolio, a page of fills, the equity curve's span) and
``rrr_site.api.authentication`` (user, role and grants in one statement) replace ORM queries on
the busiest endpoints; these tests hold them to the serializers and the ORM on the database the
suite runs on (SQLite by default, PostgreSQL with DATABASE_URL: PostgreSQL writes the text).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.rrr_site.api.conftest import T0, bearer_client

pytestmark = pytest.mark.django_db


def _fill(world, n: int, ts: dt.datetime, qty: str = "0.123456789", price: str = "50000.5"):
    from tests.factories import OrderFactory
    from trading.models import Fill

    order = OrderFactory(account=world.paper, symbol=world.eth, status="filled")
    return Fill.objects.create(
        order=order, account=world.paper, symbol=world.eth, side="sell", quantity=Decimal(qty),
        price=Decimal(price), fee=Decimal("0.0000000001"), venue_trade_id=f"x{n}", ts=ts,
    )  # fmt: skip


def test_fill_page_rows_equal_the_serializer_with_and_without_microseconds(world):
    from trading.api.portfolio_serializers import FillSerializer
    from trading.models import Fill
    from trading.portfolio_sql import fill_page

    _fill(world, 1, T0 + dt.timedelta(days=5, microseconds=250))  # microseconds shown
    _fill(world, 2, T0 + dt.timedelta(days=6), qty="12345678.0000000001", price="0.0000000001")
    rows, more = fill_page(account_ids=None, limit=100)
    assert more is None and len(rows) == Fill.objects.count() == 6
    expected = {f.pk: dict(FillSerializer(f).data) for f in Fill.objects.select_related("symbol")}
    for row in rows:
        assert row == expected[row["id"]]
    assert any(r["ts"].endswith(".000250Z") for r in rows)
    from django.db import connection

    if connection.vendor == "postgresql":  # SQLite keeps decimals as floats (15 digits)
        assert any(r["quantity"] == "12345678.0000000001" for r in rows)


def test_fill_pages_cover_every_fill_once_across_equal_timestamps(world, as_role):
    same = T0 + dt.timedelta(days=9)
    made = {_fill(world, n, same).pk for n in range(5)}  # five fills share one time
    client, seen, url = as_role("viewer"), [], "/api/v1/trades?limit=2"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 3 + 5  # the paper account's fills, each once
    assert made <= set(seen)
    times = [dt.datetime.fromisoformat(r["ts"]) for r in client.get("/api/v1/trades").json()[
        "results"]]  # fmt: skip
    assert times == sorted(times, reverse=True)


def test_fill_page_filters_as_the_orm(world, as_role):
    from trading.models import Account
    from trading.portfolio_selectors import fills_of

    client = as_role("viewer")
    start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(days=1)
    body = client.get("/api/v1/trades", {"start": start.isoformat(), "end": end.isoformat(),
                                         "symbol": "BTC-USD"}).json()  # fmt: skip
    orm = fills_of(accounts=Account.objects.filter(pk=world.paper.pk), symbol="BTC-USD",
                   start=start, end=end).order_by("-ts", "-id")  # fmt: skip
    assert [r["id"] for r in body["results"]] == [r["id"] for r in orm]
    assert client.get("/api/v1/trades", {"symbol": "NOPE-USD"}).json()["results"] == []
    assert as_role("other_trader").get("/api/v1/trades").json()["results"][0]["symbol"] == (
        "ETH-USD"
    )


def test_portfolio_rows_equal_the_orm_and_the_serializer(world):
    from django.utils import timezone

    from risk.models import TradingState
    from trading.api.portfolio_serializers import PortfolioSerializer, portfolio_json
    from trading.models import Position
    from trading.portfolio_sql import portfolio_rows

    # A closed position's realised P&L counts; a short values negative; an unmarked position
    # is valued at its average entry; a halted account says so.
    Position.objects.create(
        account=world.paper, symbol=world.eth, quantity=Decimal("-2"),
        average_price=Decimal("3000"), cost_basis=Decimal("-6000"), mark_price=None,
        realized_pnl=Decimal("-7.5"), unrealized_pnl=Decimal("0"), updated_at=T0,
    )  # fmt: skip
    Position.objects.create(
        account=world.other, symbol=world.btc, quantity=Decimal("0"),
        average_price=Decimal("0"), cost_basis=Decimal("0"), realized_pnl=Decimal("12.25"),
        updated_at=T0,
    )  # fmt: skip
    TradingState.objects.create(account=world.other, state="halted", changed_at=T0)
    now = T0 + dt.timedelta(days=2, hours=5)
    rows = portfolio_rows(account_ids=None, now=now)
    assert [r["name"] for r in rows] == ["other", "paper"]
    paper, other = rows[1], rows[0]
    # 95000 cash + 0.1 BTC at 52000 - 2 ETH at 3000 (average entry: unmarked)
    assert paper["equity"] == Decimal("94200") and paper["net_exposure"] == Decimal("-800")
    assert paper["gross_exposure"] == Decimal("11200") and paper["open_positions"] == 2
    assert paper["realized_pnl"] == Decimal("92.5")
    # The last snapshot before 00:00 UTC of day three is hour 47: 100000 + 470.
    assert paper["daily_pnl"] == Decimal("94200") - Decimal("100470")
    assert other["trading_state"] == "halted" and other["realized_pnl"] == Decimal("12.25")
    assert other["daily_pnl"] == other["equity"] - other["initial_capital"]  # no snapshot
    for row in rows:
        assert portfolio_json(row) == dict(PortfolioSerializer(row).data)
    assert portfolio_rows(account_ids=[], now=timezone.now()) == []
    assert [r["name"] for r in portfolio_rows(account_ids=[world.paper.pk], now=now)] == ["paper"]


def test_user_role_and_grants_are_read_on_every_request(world):
    from django.contrib.auth.models import Group

    viewer = world.users["viewer"]
    client = bearer_client(viewer)
    assert [r["name"] for r in client.get("/api/v1/portfolio").json()] == ["paper"]
    world.other.members.add(viewer)  # a grant shows on the next request
    assert [r["name"] for r in client.get("/api/v1/portfolio").json()] == ["other", "paper"]
    world.paper.members.remove(viewer)
    world.other.members.remove(viewer)
    assert client.get("/api/v1/portfolio").json() == []
    assert client.get(f"/api/v1/portfolio?account={world.paper.pk}").status_code == 404
    viewer.groups.remove(Group.objects.get(name="viewer"))  # no role: 403
    assert client.get("/api/v1/portfolio").status_code == 403
    viewer.is_staff = True  # staff see every account, but still need a role
    viewer.save()
    viewer.groups.add(Group.objects.get(name="viewer"))
    assert len(client.get("/api/v1/portfolio").json()) == 2
    viewer.is_active = False
    viewer.save()
    assert client.get("/api/v1/portfolio").status_code == 401
    viewer.delete()
    assert client.get("/api/v1/portfolio").status_code == 401


def test_superuser_is_admin_with_every_account(world):
    from tests.factories import UserFactory

    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    body = bearer_client(root).get("/api/v1/auth/me").json()
    assert body["role"] == "admin" and len(body["accounts"]) == 2


def test_equity_curve_body_equals_the_serializer_and_follows_new_snapshots(world, as_role):
    from trading.api.portfolio_serializers import EquityCurveSerializer
    from trading.models import PortfolioSnapshot
    from trading.portfolio_selectors import equity_curve_rows

    response = as_role("viewer").get("/api/v1/performance/equity-curve?points=5")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    rows = equity_curve_rows(account=world.paper, points=5)
    assert body == dict(EquityCurveSerializer({"account": world.paper.pk, "points": rows}).data)
    # A snapshot older than the first (a backfill) changes the span: recomputed at once.
    PortfolioSnapshot.objects.create(
        account=world.paper, ts=T0 - dt.timedelta(days=30), cash=1, total_value=1, equity=1
    )
    again = as_role("viewer").get("/api/v1/performance/equity-curve?points=5").json()
    assert again["points"][0]["equity"] == "1.0000000000"


def _seed_fills(world, count: int = 60):
    """Fills every 19 hours over ~7 weeks in two symbols (crossing days, weeks and months)."""
    from tests.factories import OrderFactory
    from trading.models import Fill

    order = OrderFactory(account=world.paper, symbol=world.btc, status="filled")
    start = dt.datetime(2025, 12, 20, 5, tzinfo=dt.UTC)
    return Fill.objects.bulk_create(
        Fill(order=order, account=world.paper, symbol=world.btc if n % 3 else world.eth,
             side="buy" if n % 2 else "sell", quantity=Decimal(f"0.{n + 1:03d}"),
             price=Decimal(f"{40000 + 37 * n}.25"), fee=Decimal(f"{n}.125"),
             venue_trade_id=f"s{n}", ts=start + dt.timedelta(hours=19 * n))
        for n in range(count)
    )  # fmt: skip


def _orm_per_period(account, period: str) -> dict:
    """What the fills aggregate said before the rollup: {period: (count, fees)}."""
    from django.db.models import Count, Sum

    from trading.models import Fill
    from trading.portfolio_selectors import PERIODS

    rows = (
        Fill.objects.filter(account=account)
        .annotate(period=PERIODS[period]("ts"))
        .values("period")
        .annotate(n=Count("pk"), fees=Sum("fee"))
    )
    return {r["period"]: (r["n"], r["fees"]) for r in rows}


def _orm_per_symbol(account) -> dict:
    from django.db.models import Count, F, Sum

    from trading.models import Fill

    rows = (
        Fill.objects.filter(account=account)
        .values("symbol__name")
        .annotate(n=Count("pk"), notional=Sum(F("quantity") * F("price")))
    )
    return {r["symbol__name"]: (r["n"], r["notional"]) for r in rows}


def _rollup_per_symbol(account) -> dict:
    from django.db.models import Sum

    from trading.models import FillDay

    rows = FillDay.objects.filter(account=account).values("symbol__name")
    rows = rows.annotate(n=Sum("fills"), notional=Sum("notional"))
    return {r["symbol__name"]: (r["n"], r["notional"]) for r in rows if r["n"]}


def test_fill_day_rollup_follows_inserts_updates_and_deletes(world):
    from trading.models import Fill
    from trading.portfolio_selectors import _fills_per_period

    fills = _seed_fills(world)
    Fill.objects.filter(pk=fills[4].pk).update(fee=Decimal("99.5"), ts=fills[40].ts)  # moved
    Fill.objects.filter(pk__in=[fills[7].pk, fills[8].pk]).delete()
    for period in ("day", "week", "month"):
        orm = _orm_per_period(world.paper, period)
        rollup = _fills_per_period(world.paper, period, list(orm))
        assert {k: v for k, v in rollup.items() if v[0]} == orm, period
    assert _rollup_per_symbol(world.paper) == _orm_per_symbol(world.paper)


def test_profit_reads_equal_the_fill_aggregates(world, as_role):
    from trading.models import Position

    _seed_fills(world)
    Position.objects.create(
        account=world.paper, symbol=world.eth, quantity=Decimal("0"), average_price=Decimal("0"),
        cost_basis=Decimal("0"), updated_at=T0,
    )  # fmt: skip
    client = as_role("viewer")
    symbols = {r["symbol"]: r for r in client.get("/api/v1/profit/symbols").json()}
    for name, (n, notional) in _orm_per_symbol(world.paper).items():
        assert symbols[name]["fills"] == n
        assert Decimal(symbols[name]["traded_value"]) == notional.quantize(Decimal("1e-10"))
    weekly = client.get("/api/v1/profit/weekly?count=10").json()
    orm = _orm_per_period(world.paper, "week")
    for row in weekly:
        start = dt.datetime.fromisoformat(row["period"])
        n, fees = orm.get(start, (0, Decimal(0)))
        assert (row["fills"], Decimal(row["fees"])) == (n, fees)
    stats = client.get("/api/v1/stats").json()
    from trading.models import Fill

    assert stats["counts"]["fills"] == Fill.objects.filter(account=world.paper).count()


def test_performance_follows_new_snapshots_and_fills(world, as_role):
    from trading.models import PortfolioSnapshot

    client = as_role("viewer")
    waiting = client.get("/api/v1/performance?bucket=1h").json()
    # The first load queued the first trade tally (tests run django-q2 tasks inline).
    assert waiting["metrics"]["win_rate"] is None and waiting["note"]
    first = client.get("/api/v1/performance?bucket=1h").json()
    assert first == client.get("/api/v1/performance?bucket=1h").json()  # kept: the same
    last = PortfolioSnapshot.objects.order_by("-ts").first()
    PortfolioSnapshot.objects.create(
        account=world.paper, ts=last.ts + dt.timedelta(hours=1), cash=1, total_value=1,
        equity=Decimal("90000"),
    )  # fmt: skip
    second = client.get("/api/v1/performance?bucket=1h").json()
    assert second["points"] == first["points"] + 1 and second["snapshots"] == 73
    _seed_fills(world, 6)  # three round trips more (buy/sell alternate)
    behind = client.get("/api/v1/performance?bucket=1h").json()  # as stored; a refresh queued
    assert behind["trades_behind"] and behind["metrics"] == second["metrics"]
    third = client.get("/api/v1/performance?bucket=1h").json()
    assert not third["trades_behind"] and third["trades_as_of"] >= behind["trades_as_of"]
    assert third["metrics"]["win_rate"] != second["metrics"]["win_rate"] or (
        third["metrics"]["profit_factor"] != second["metrics"]["profit_factor"]
    )


def test_kept_query_answers_are_per_query_string_and_never_keep_errors(world, as_role):
    client = as_role("viewer")
    for _ in range(2):  # the second answer comes from the kept parse
        assert len(client.get("/api/v1/trades?limit=1").json()["results"]) == 1
        assert len(client.get("/api/v1/trades?limit=2").json()["results"]) == 2
        bad = client.get("/api/v1/trades?limit=0")
        assert bad.status_code == 400 and "limit" in bad.json()
