"""The dashboard in a real browser against a live paper engine: live bars, a quick order filled,
the order and its fill appearing in Orders and the P&L following in Performance without a reload,
a halt that stops orders, a backtest launched from its form followed live to 100 % on its page and
in the runs list, a model activated live; no JavaScript console errors on any page."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS, login

pytestmark = [pytest.mark.timeout(420), pytest.mark.django_db(transaction=True)]
PAGES = ["/", "/market/", "/orders/", "/performance/", "/risk/", "/models/", "/backtests/",
         "/system/"]  # fmt: skip


def test_trading_day_in_the_browser(live_server_url, browser_page):
    url, page = live_server_url, browser_page
    login(page, url)
    page.wait_for_selector("#ws-status.live", timeout=20_000)
    page.goto(f"{url}/market/?symbol=BTC-USD&tf=1s")
    page.wait_for_selector("#ws-status.live", timeout=20_000)
    first = page.get_attribute("#candles", "data-draws")
    # A bar arrives over the WebSocket and the chart redraws without a reload.
    page.wait_for_function(
        "(n) => Number(document.getElementById('candles').dataset.draws || 0) > Number(n) + 1",
        arg=first, timeout=30_000,
    )  # fmt: skip
    page.fill("#ticket input[name=quantity]", "0.01")
    page.click("#ticket-submit")
    page.wait_for_selector("#verdict.ok", timeout=15_000)
    assert "accepted" in page.inner_text("#verdict")
    page.wait_for_function(
        "() => document.querySelectorAll('#my-fills tbody tr').length > 0", timeout=30_000
    )
    page.screenshot(path=str(SCREENSHOTS / "market.png"), full_page=True)
    orders_and_performance_are_live(url, page)
    page.goto(f"{url}/")
    page.wait_for_selector("#positions tbody tr[data-symbol='BTC-USD']", timeout=30_000)
    page.click("#btn-halt")
    page.wait_for_function(
        "() => document.getElementById('state').textContent.trim() === 'halted'", timeout=15_000
    )
    page.wait_for_function(  # the notice says why and how to resume, without a reload
        "() => !document.getElementById('state-notice').hidden", timeout=15_000
    )
    assert "is HALTED (dashboard)" in page.inner_text("#state-notice")
    page.screenshot(path=str(SCREENSHOTS / "overview-halted.png"), full_page=True)
    page.goto(f"{url}/market/?symbol=BTC-USD&tf=1s")
    page.fill("#ticket input[name=quantity]", "0.01")
    page.click("#ticket-submit")
    page.wait_for_selector("#verdict.refused", timeout=15_000)
    assert "halted" in page.inner_text("#verdict").lower()
    # Launch a backtest from the form (POST /api/v1/backtests); its page follows the run live
    # over backtests.<id> until 100 %, without a reload.
    page.goto(f"{url}/backtests/")
    page.select_option("#launch select[name=strategy]", "sma_cross")
    page.fill("#launch input[name=symbols]", "BTC-USD")
    page.select_option("#launch select[name=timeframe]", "1m")
    page.fill("#launch input[name=start]", "2026-01-01")
    page.fill("#launch input[name=end]", "2026-01-04")
    page.select_option("#launch select[name=source]", "sim")
    page.fill("#launch input[name=params]", "fast=5 slow=20")
    page.click("#launch-submit")
    page.wait_for_url(f"{url}/backtests/*/", timeout=15_000)
    page.wait_for_selector("#ws-status.live", timeout=20_000)
    page.evaluate("() => { window.sameDocument = true; }")
    page.wait_for_function(
        "() => document.getElementById('bt-percent').textContent.trim() === '100'"
        " && document.getElementById('run').dataset.status === 'completed'",
        timeout=120_000,
    )  # fmt: skip
    assert page.evaluate("() => window.sameDocument === true")  # no reload: it came live
    assert page.get_attribute("#bt-bar", "style") == "width: 100%;"
    # Its figures beside buy-and-hold replace the blanks once it completed, still no reload.
    page.wait_for_function(
        "() => !document.querySelector('#figures tbody tr td:nth-child(2)')"
        ".textContent.includes('—')", timeout=15_000,
    )  # fmt: skip
    assert page.evaluate("() => window.sameDocument === true")
    page.screenshot(path=str(SCREENSHOTS / "backtest-run.png"), full_page=True)
    runs_list_is_live(url, page)
    activation_is_live(url, page)
    for path in PAGES:
        page.goto(f"{url}{path}")
        page.wait_for_load_state("load")
        page.wait_for_function(  # live, or a page that watches nothing: never left "offline"
            "() => { const s = document.getElementById('ws-status');"
            " return s.classList.contains('live') || s.dataset.idle === '1'; }",
            timeout=20_000,
        )  # fmt: skip
        page.screenshot(path=str(SCREENSHOTS / f"page-{path.strip('/') or 'overview'}.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in [("/", "overview"), ("/market/?symbol=BTC-USD&tf=1s", "market"),
                       ("/orders/", "orders"), ("/performance/", "performance"),
                       ("/models/", "models"), ("/backtests/", "backtests")]:  # fmt: skip
        page.goto(f"{url}{path}")
        page.wait_for_load_state("load")
        # One column at phone width: nothing wider than the screen but tables that scroll.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, path
        page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    # The one refused order's 422 is logged by Chromium as a failed resource; nothing else may be.
    expected = "the server responded with a status of 422"
    assert [e for e in page.errors if expected not in e] == []


def _stay(page) -> None:
    """Mark the document: a reload would lose the mark (``_stayed`` checks it)."""
    page.evaluate("() => { window.sameDocument = true; }")


def _stayed(page) -> bool:
    return page.evaluate("() => window.sameDocument === true")


def orders_and_performance_are_live(url: str, page) -> None:
    """An order placed while Orders is open appears there, with its fill, as it fills; the
    Performance page's P&L follows the engine's portfolio snapshots."""
    page.goto(f"{url}/orders/")
    page.wait_for_selector("#orders[data-synced='1']", timeout=20_000)  # the snapshot came
    page.wait_for_selector("#fills[data-synced='1']", timeout=20_000)
    _stay(page)
    before = page.evaluate("() => document.querySelectorAll('#fills tbody tr[data-order]').length")
    assert before == 0  # rows from the server carry data-fill; live ones data-order
    placed = page.evaluate(
        """async () => {
          const res = await RRR.api("POST", "/api/v1/orders", {
            account: +document.body.dataset.account, symbol: "BTC-USD", side: "buy",
            type: "market", quantity: "0.01"});
          return res.status === 201 ? res.data.order.client_order_id : `HTTP ${res.status}`;
        }"""
    )  # fmt: skip
    assert len(placed) == 36, placed
    placed = placed.replace("-", "")  # the page's form of a client id (the engine's)
    row = f"#orders tbody tr[data-id='{placed}']"
    page.wait_for_selector(f"{row}[data-status='filled']", timeout=30_000)
    page.wait_for_selector(f"#fills tbody tr[data-order='{placed}']", timeout=30_000)
    assert page.inner_text(f"{row} td.status") == "filled"
    assert _stayed(page)  # it came live, not by a reload
    page.screenshot(path=str(SCREENSHOTS / "orders-live.png"), full_page=True)
    # The live row links to the order's page through its client id.
    page.click(f"{row} a")
    page.wait_for_selector("#timeline")
    assert page.get_attribute("#order", "data-client-id") == placed
    assert page.inner_text("#o-status") == "filled"
    page.goto(f"{url}/performance/")
    page.wait_for_selector("#ws-status.live", timeout=20_000)
    _stay(page)
    page.wait_for_function(  # the snapshot on subscribe, then an engine snapshot (every 10 s)
        "() => Number(document.getElementById('live-pnl').dataset.updates || 0) >= 2",
        timeout=40_000,
    )  # fmt: skip
    assert _stayed(page)
    assert page.inner_text("#per-symbol tbody tr[data-symbol='BTC-USD'] td.qty") != ""
    page.screenshot(path=str(SCREENSHOTS / "performance-live.png"), full_page=True)


def runs_list_is_live(url: str, page) -> None:
    """A run launched while the runs list is open moves there and its row is refreshed with its
    figures when it completes, without a reload."""
    page.goto(f"{url}/backtests/")
    run = page.evaluate(
        """async () => (await RRR.api("POST", "/api/v1/backtests", {strategy: "sma_cross",
            symbols: ["BTC-USD"], timeframe: "1m", start: "2026-01-01T00:00:00Z",
            end: "2026-01-03T00:00:00Z", source: "sim", params: {fast: 5, slow: 20}})).data.id"""
    )  # fmt: skip
    page.reload()  # the list shows runs as they were at load: the new one is there from now on
    page.wait_for_selector(f"#runs tr[data-run='{run}']")
    page.wait_for_selector("#ws-status.live", timeout=20_000)
    _stay(page)
    page.wait_for_selector(f"#runs tr[data-run='{run}'][data-status='completed']", timeout=120_000)
    page.wait_for_selector(f"#runs tr[data-run='{run}'][data-refreshed='1']", timeout=15_000)
    cells = page.inner_text(f"#runs tr[data-run='{run}']")
    assert "completed" in cells and "%" not in cells  # the refreshed row: figures, no bar
    assert _stayed(page)
    page.screenshot(path=str(SCREENSHOTS / "backtests-live.png"), full_page=True)


def _in_thread(fn):
    """Run ``fn`` (ORM work) outside Playwright's event loop, where Django refuses it."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def run():
        try:
            return fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _admin_and_two_versions():
    from django.contrib.auth.models import Group, User

    from tests.factories import MLModelFactory

    User.objects.get(username="e2e-trader").groups.add(Group.objects.get_or_create(name="admin")[0])
    return MLModelFactory(name="e2e-model"), MLModelFactory(name="e2e-model")


def activation_is_live(url: str, page) -> None:
    """An admin's activation shows on the Models page without a reload."""
    first, second = _in_thread(_admin_and_two_versions)
    page.goto(f"{url}/models/")
    page.wait_for_selector("#ws-status.live", timeout=20_000)
    _stay(page)
    # The second's activation switches the first off; then the second is switched off.
    for model, form, active in ((first, "force", "1"), (second, "force", "1"),
                                (second, "active", "0")):  # fmt: skip
        status = page.evaluate(
            """async ([pk, form]) => (await fetch(`/models/${pk}/activate`, {method: "POST",
                credentials: "same-origin", body: new URLSearchParams(form), headers: {
                  "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content,
                }})).status""",
            [model.pk, {form: "1" if form == "force" else "0"}],
        )  # fmt: skip
        assert status == 200, status
        row = f"#models tr[data-version='{model.version}'][data-name='e2e-model']"
        page.wait_for_selector(f"{row}[data-active='{active}']", timeout=15_000)
        if model is second and active == "1":
            assert page.get_attribute(f"#models tr[data-version='{first.version}']",
                                      "data-active") == "0"  # fmt: skip
    assert _stayed(page)
    page.screenshot(path=str(SCREENSHOTS / "models-live.png"), full_page=True)
