"""The read endpoints answer from the database, scoped to the caller's accounts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtesting.engine.metrics import summarize
from tests.rrr_site.api.conftest import T0
from trading.trade_tally import trade_tally_refresh

pytestmark = pytest.mark.django_db


def test_portfolio_values_and_scope(world, as_role):
    body = as_role("viewer").get("/api/v1/portfolio").json()
    assert [row["name"] for row in body] == ["paper"]
    row = body[0]
    # cash 95000 + 0.1 BTC marked at 52000; daily P&L from the last snapshot before today.
    assert row["equity"] == "100200.0000000000"
    assert row["gross_exposure"] == "5200.0000000000"
    assert row["total_pnl"] == "200.0000000000"
    assert row["trading_state"] == "active"
    # The alias answers the same; another account's id is a 404, never its data.
    assert as_role("viewer").get("/api/portfolio").json()[0]["equity"] == row["equity"]
    other = as_role("viewer").get(f"/api/v1/portfolio?account={world.other.pk}")
    assert other.status_code == 404
    assert as_role("other_trader").get("/api/v1/portfolio").json()[0]["name"] == "other"


def test_positions(world, as_role):
    body = as_role("trader").get("/api/v1/portfolio/positions").json()
    assert [(p["symbol"], p["quantity"], p["mark_price"]) for p in body] == [
        ("BTC-USD", "0.1000000000", "52000.0000000000")
    ]


def test_trades_keyset_pages_cover_every_fill_once(world, as_role):
    client = as_role("trader")
    page = client.get("/api/v1/trades?limit=2").json()
    first_ids = [f["id"] for f in page["results"]]
    assert len(first_ids) == 2 and page["next"]
    rest = client.get(page["next"]).json()
    assert rest["next"] is None
    ids = first_ids + [f["id"] for f in rest["results"]]
    assert len(ids) == 3 == len(set(ids))  # the other account's fill never shows
    assert page["results"][0]["price"] == "50000.0000000000"  # newest first
    narrowed = client.get("/api/v1/trades", {"start": (T0.replace(hour=2)).isoformat()}).json()
    assert len(narrowed["results"]) == 2


def test_round_trips_from_fills(world, as_role):
    body = as_role("viewer").get("/api/v1/trades/round-trips").json()
    assert body["count"] == 2
    open_trip, closed = body["results"]
    assert open_trip["is_open"] and not closed["is_open"]
    # (51000 - 50000) * 0.1 - 5 - 5.1
    assert Decimal(closed["pnl"]) == Decimal("89.9")


def test_performance_is_the_backtest_metrics_on_the_snapshots(world, as_role):
    trade_tally_refresh(world.paper.pk)  # the background tally (a task, every minute)
    body = as_role("viewer").get("/api/v1/performance?bucket=1h").json()
    equity = [100000 + 10 * h - (300 if 30 <= h < 36 else 0) for h in range(72)]
    expected = summarize(
        [float(e) for e in equity], initial=100000.0, periods_per_year=8760,
        trade_pnls=[89.9], trade_returns=[89.9 / 5000], years=71 / 8760,
    )  # fmt: skip
    assert body["points"] == 72
    assert body["metrics"]["max_drawdown"] == pytest.approx(expected["max_drawdown"])
    assert body["metrics"]["sharpe"] == pytest.approx(expected["sharpe"])
    assert body["metrics"]["win_rate"] == 1.0
    assert body["baseline"]["metrics"]["total_return"] == 0.0


def test_equity_curve_downsampled(world, as_role):
    body = as_role("viewer").get("/api/v1/performance/equity-curve?points=10").json()
    points = body["points"]
    assert 2 <= len(points) <= 10
    # The last snapshot is always there; times strictly increase.
    assert points[-1]["equity"] == "100710.0000000000"
    stamps = [p["ts"] for p in points]
    assert stamps == sorted(set(stamps))
    full = as_role("viewer").get("/api/v1/performance/equity-curve?points=5000").json()
    assert len(full["points"]) == 72


def test_profit_daily_and_per_symbol(world, as_role):
    daily = as_role("viewer").get("/api/v1/profit/daily?count=3").json()
    assert [d["period"][:10] for d in daily] == ["2026-01-07", "2026-01-06", "2026-01-05"]
    # Day one ends at hour 23 (100230) measured from the initial capital.
    assert daily[2]["profit"] == "230.0000000000" and daily[2]["fills"] == 2
    assert daily[1]["profit"] == "240.0000000000" and daily[1]["fills"] == 1
    weekly = as_role("viewer").get("/api/v1/profit/weekly").json()
    assert len(weekly) == 1 and weekly[0]["profit"] == "710.0000000000"
    symbols = as_role("viewer").get("/api/v1/profit/symbols").json()
    assert symbols == [
        {
            "symbol": "BTC-USD", "quantity": "0.1000000000", "realized_pnl": "100.0000000000",
            "unrealized_pnl": "200.0000000000", "fees": "15.1000000000",
            "net_pnl": "284.9000000000", "fills": 3, "traded_value": "15100.0000000000",
        }
    ]  # fmt: skip


def test_fast_fill_rows_equal_the_documented_serializer(world):
    from trading.api.portfolio_serializers import FillSerializer, fill_json
    from trading.models import Account, Fill
    from trading.portfolio_selectors import fills_of

    rows = {r["id"]: r for r in fills_of(accounts=Account.objects.all())}
    fills = Fill.objects.select_related("symbol").all()
    assert len(fills) == len(rows) == 4
    for fill in fills:
        assert fill_json(rows[fill.pk]) == dict(FillSerializer(fill).data)


def test_equity_curve_rows_equal_the_documented_serializer(world):
    from trading.api.portfolio_serializers import EquityPointSerializer
    from trading.models import PortfolioSnapshot
    from trading.portfolio_selectors import equity_curve_rows

    rows = equity_curve_rows(account=world.paper, points=5000)
    snapshots = PortfolioSnapshot.objects.filter(account=world.paper).order_by("ts")
    assert rows == [dict(EquityPointSerializer(s).data) for s in snapshots]
    # Cached until a newer snapshot exists: then the new one shows at once.
    from decimal import Decimal

    last = snapshots.last()
    PortfolioSnapshot.objects.create(
        account=world.paper, ts=last.ts.replace(year=2027), cash=1, total_value=1,
        equity=Decimal("123.45"),
    )  # fmt: skip
    assert equity_curve_rows(account=world.paper, points=5000)[-1]["equity"] == "123.4500000000"
