"""The orders and trades page in keyset pages, its live hooks, and the other pages' live hooks:
bounded reads whatever the history's size, nothing lost or repeated between pages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import AccountFactory, SymbolFactory, UserFactory
from trading.models import Fill, Order

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _viewer(account):
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    account.members.add(user)
    return user


def _history(account, symbol, n: int, *, strategy: str = "sma_cross") -> list[Order]:
    """Store ``n`` filled orders, one fill each, a second apart (some on the same second)."""
    orders = Order.objects.bulk_create(
        Order(account=account, symbol=symbol, side="buy" if i % 2 else "sell", type="market",
              quantity=Decimal("0.01"), status="filled", filled_quantity=Decimal("0.01"),
              average_fill_price=Decimal(100 + i), strategy=strategy,
              created_at=T0 + timedelta(seconds=i // 2), updated_at=T0 + timedelta(seconds=i // 2))
        for i in range(n)
    )  # fmt: skip
    Fill.objects.bulk_create(
        Fill(order=o, account=account, symbol=symbol, side=o.side, quantity=o.quantity,
             price=o.average_fill_price, fee=Decimal("0.01"), venue_trade_id=f"t{o.pk}",
             ts=o.created_at)
        for o in orders
    )  # fmt: skip
    return orders


def _ids(html: str, table: str, attr: str) -> list[str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(rf'<tr {attr}="([^"]+)"', body)


def _older(html: str, which: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" id="{which}-older"', html)
    return "/orders/" + found.group(1).replace("&amp;", "&") if found else None


def _walk(client, table: str, attr: str) -> tuple[list[str], int]:
    """Follow a table's "older" links from the newest page; return its row ids and page count."""
    seen, url, pages = [], "/orders/", 0
    while url:
        html = client.get(url).content.decode()
        assert ("rrr/orders.js" in html) == (pages == 0)  # live on the newest page only
        seen += _ids(html, table, attr)
        url = _older(html, table)
        pages += 1
    return seen, pages


def test_history_pages_cover_every_row_once_newest_first(client):
    account, symbol = AccountFactory(name="desk"), SymbolFactory(name="BTC-USD")
    orders = _history(account, symbol, 230)
    client.force_login(_viewer(account))
    seen_orders, pages = _walk(client, "orders", "data-id")
    assert pages == 3  # 100 + 100 + 30
    newest_first = sorted(orders, key=lambda o: (o.created_at, o.pk), reverse=True)
    assert seen_orders == [o.client_order_id.hex for o in newest_first]
    seen_fills, pages = _walk(client, "fills", "data-fill")
    fills = Fill.objects.filter(account=account).order_by("-ts", "-pk")
    assert pages == 3 and seen_fills == [str(f.pk) for f in fills]


def test_a_page_reads_the_same_few_rows_whatever_the_history(client):
    account, symbol = AccountFactory(name="desk"), SymbolFactory(name="BTC-USD")
    client.force_login(_viewer(account))
    _history(account, symbol, 5)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/orders/").status_code == 200
    _history(account, symbol, 400)
    with CaptureQueriesContext(connection) as large:
        page = client.get("/orders/").content.decode()
    assert len(large.captured_queries) == len(small.captured_queries)
    assert len(_ids(page, "orders", "data-id")) == 100 == len(_ids(page, "fills", "data-fill"))


def test_a_malformed_cursor_is_a_400_naming_it(client):
    account = AccountFactory(name="desk")
    client.force_login(_viewer(account))
    response = client.get("/orders/?orders_before=not-a-cursor")
    assert response.status_code == 400 and "orders_before" in response.content.decode()


def test_rows_are_escaped(client):
    account, symbol = AccountFactory(name="desk"), SymbolFactory(name="BTC-USD")
    _history(account, symbol, 1, strategy='<script>alert("x")</script>')
    client.force_login(_viewer(account))
    page = client.get("/orders/").content.decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)" in page


def test_the_newest_page_is_live_with_its_filters(client):
    account = AccountFactory(name="desk")
    client.force_login(_viewer(account))
    page = client.get("/orders/?symbol=btc-usd&side=buy&since=2026-01-02").content.decode()
    assert "rrr/orders.js" in page
    assert '"symbol": "BTC-USD", "side": "buy"' in page
    assert '"since": "2026-01-02T00:00:00+00:00"' in page


def test_an_order_by_its_client_id_redirects_to_its_page_for_its_viewers_only(client):
    account, symbol = AccountFactory(name="desk"), SymbolFactory(name="BTC-USD")
    (order,) = _history(account, symbol, 1)
    client.force_login(_viewer(account))
    for form in (order.client_order_id.hex, str(order.client_order_id)):  # engine's, API's
        response = client.get(f"/orders/by-client/{form}/")
        assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    assert client.get("/orders/by-client/not-a-uuid/").status_code == 404
    assert client.get(f"/orders/by-client/{uuid.uuid4()}/").status_code == 404
    client.force_login(_viewer(AccountFactory(name="other")))
    assert client.get(f"/orders/by-client/{order.client_order_id}/").status_code == 404


def test_chart_timeframes_prefer_venue_bars_in_one_query():
    from rrr_site.pages.selectors import chart_timeframes
    from tests.factories import BarFactory

    sim_only, both = SymbolFactory(name="SIM-USD"), SymbolFactory(name="BTC-USD")
    BarFactory(symbol=sim_only, timeframe="1h", ts=T0, simulated=True)
    BarFactory(symbol=both, timeframe="5m", ts=T0, simulated=True)
    BarFactory(symbol=both, timeframe="1d", ts=T0)
    BarFactory(symbol=both, timeframe="1m", ts=T0)
    with CaptureQueriesContext(connection) as queries:
        assert chart_timeframes(symbol=both) == ["1m", "1d"]
    assert len(queries.captured_queries) == 1
    assert chart_timeframes(symbol=sim_only) == ["1h"]
    assert chart_timeframes(symbol=SymbolFactory(name="NEW-USD")) == []


def test_models_and_runs_carry_what_their_live_scripts_update(client):
    from backtesting.models import BacktestRun
    from backtesting.services import Costs, backtest_run_create
    from tests.factories import MLModelFactory

    model = MLModelFactory(name="btc-direction", active=True)
    run = backtest_run_create(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe="1m",
        start=T0, end=T0 + timedelta(days=1), costs=Costs(), data_source="sim",
    )  # fmt: skip
    BacktestRun.objects.filter(pk=run.pk).update(status="running", progress=0.25)
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    client.force_login(user)
    page = client.get("/models/").content.decode()
    assert (
        f'data-name="btc-direction" data-version="{model.version}" data-active="1"' in page
        and 'RRR.on("system"' in page
    )
    page = client.get("/backtests/").content.decode()
    assert f'data-run="{run.pk}" data-status="running"' in page
    assert '<span class="pct">25</span>' in page and "backtests.${id}" in page


def test_the_system_pages_counts_are_shared_for_a_few_seconds_and_dated(client):
    from django.core.cache import cache

    cache.clear()
    account = AccountFactory(name="desk")
    client.force_login(_viewer(account))
    with CaptureQueriesContext(connection) as first:
        page = client.get("/system/").content.decode()
    assert "as of " in page and page.count("UTC") >= 1
    with CaptureQueriesContext(connection) as second:
        client.get("/system/")
    assert len(second.captured_queries) < len(first.captured_queries) - 5
    other = UserFactory()  # another set of accounts: its own figures
    other.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(other)
    with CaptureQueriesContext(connection) as third:
        assert client.get("/system/").context["stats"]["counts"]["accounts"] == 0
    assert len(third.captured_queries) > len(second.captured_queries)


def test_the_monthly_grid_is_the_apis_monthly_profit(client):
    from trading.models import PortfolioSnapshot

    account = AccountFactory(name="desk")  # initial capital 100,000
    for day, equity in ((0, 100500), (30, 101000), (31, 99990), (58, 103020), (70, 103020)):
        PortfolioSnapshot.objects.create(
            account=account, ts=T0 + timedelta(days=day), cash=Decimal(equity),
            equity=Decimal(equity), total_value=Decimal(equity), drawdown=0.0,
        )  # fmt: skip
    client.force_login(_viewer(account))
    monthly = client.get("/performance/").context["monthly"]
    assert [(m["year"], m["month"]) for m in monthly] == [(2026, 1), (2026, 2), (2026, 3)]
    assert [round(m["return"], 6) for m in monthly] == [0.01, 0.02, 0.0]
    api = client.get(f"/api/v1/profit/monthly?account={account.pk}").json()
    assert [round(r["profit_ratio"], 6) for r in reversed(api)] == [0.01, 0.02, 0.0]
