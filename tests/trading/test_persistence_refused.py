"""Data the database refuses for good stops the engine loudly and loses nothing; an outage is
bounded.

The last 60-minute soak: the paper venue made a fill of 4e-17 BTC, PostgreSQL stored it as 0 and
the fill's check refused the batch; the engine retried that write for 50 minutes while it traded
on, and exited with 178 fills and 35 orders unstored. Here the same kind of fill (4e-17 on
PostgreSQL, 0 on SQLite, which keeps 4e-17) reaches the engine's recorder, and the real
``fill_quantity_positive`` constraint refuses it: the account is halted at once, the risk event
and the halt are stored, everything unstored goes to a JSON file under the data folder, and the
run raises an error naming the fill and the constraint. An outage (a trigger refusing updates of
the account row) longer than the limit stops the engine too, and what it held is stored on the
way out once the database is back.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from marketdata.feeds import SimulatedFeed
from risk.models import RiskEvent, TradingState
from tests.dbfaults import refuse_updates
from tests.runtime_harness import db, has_state, runtime_for, until
from tests.trading.books import assert_books_agree
from trading import runtime as runtime_module
from trading.engine.hooks import TradingMode
from trading.models import Fill, Order
from trading.persistence import refused_for_good
from trading.runtime import (
    PersistenceRefused,
    RuntimeConfig,
    TradingRuntime,
    WriteOutage,
    write_outage_limit,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


class Seen:
    """OMS listener keeping every order id and fill the engine made (stored or not)."""

    def __init__(self, runtime) -> None:
        held = list(runtime._unsaved.fills) if runtime._unsaved is not None else []
        held += runtime.recorder.fills
        self.fills = runtime.summary.fills + len(held)
        self.last_fill = held[-1] if held else None
        self.orders: set[str] = set(runtime.recorder.seen)

    def on_order(self, order) -> None:
        """Keep the order's id."""
        self.orders.add(order.client_order_id)

    def on_fill(self, fill) -> None:
        """Count ``fill``."""
        self.fills += 1
        self.last_fill = fill


def start(account, **overrides) -> tuple[TradingRuntime, asyncio.Task]:
    overrides = {"strategy": "sma_cross", "params": {"fast": 2, "slow": 3}, **overrides}
    runtime = runtime_for(account, **overrides)
    return runtime, asyncio.create_task(runtime.run(asyncio.Event()))


async def trading(runtime, task) -> Seen:
    """Wait until the engine traded and stored fills; return its listener."""
    await until(lambda: task.done() or runtime.runner is not None, "engine start")
    seen = Seen(runtime)
    runtime.oms.add_listener(seen)
    await until(lambda: seen.fills >= 2 and runtime.summary.fills >= 1, "fills stored", 60)
    return seen


async def stored_fill_ids(account) -> list[str]:
    return await db(
        lambda: list(Fill.objects.filter(account=account).values_list("venue_trade_id", flat=True))
    )()


async def stored_order_ids(account) -> set[str]:
    rows = await db(
        lambda: list(
            Order.objects.filter(account=account).values_list("client_order_id", flat=True)
        )
    )()
    return {cid.hex for cid in rows}


async def messages(account) -> list[str]:
    return await db(
        lambda: list(
            RiskEvent.objects.filter(account=account, kind="persistence").values_list(
                "message", flat=True
            )
        )
    )()


async def test_a_fill_the_database_refuses_halts_stops_and_is_kept_in_a_file(
    paper, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    runtime, task = start(paper)
    seen = await trading(runtime, task)
    # The soak's fill: an engine fill of a real order, of a quantity the column cannot hold
    # (PostgreSQL rounds 4e-17 to 0; SQLite keeps 4e-17, so there it is 0 itself).
    dust = Decimal("4E-17") if connection.vendor == "postgresql" else Decimal(0)
    runtime.recorder.on_fill(replace(seen.last_fill, quantity=dust, venue_trade_id="dust-1"))
    with pytest.raises(PersistenceRefused) as raised:
        await asyncio.wait_for(task, 60)
    message = str(raised.value)
    assert "fill dust-1 of order" in message
    assert "fill_quantity_positive" in message
    assert "the account is halted" in message
    refused = raised.value.record
    assert refused["kind"] == "fill"
    assert refused["record"]["venue_trade_id"] == "dust-1"
    assert Decimal(refused["record"]["quantity"]) == dust

    # No new order at once, and the halt outlives the process (an operator must look first).
    assert runtime.oms.mode(paper.name) is TradingMode.HALTED
    assert await has_state(paper, "halted")
    assert any("database refused fill dust-1" in m for m in await messages(paper))

    # The file holds every fill and order the database has not: nothing accepted is lost.
    path = Path(message.rsplit("kept in ", 1)[1])
    assert path.parent == tmp_path / "unsaved"
    dump = json.loads(path.read_text())
    assert dump["account"] == paper.name
    assert dump["refused"]["record"]["venue_trade_id"] == "dust-1"
    dumped = dump["batch"]["fills"]
    assert "dust-1" in [f["venue_trade_id"] for f in dumped]
    stored = await stored_fill_ids(paper)
    assert "dust-1" not in stored
    assert len(stored) + len(dumped) == seen.fills + 1, "a fill was neither stored nor dumped"
    assert not {f["venue_trade_id"] for f in dumped} & set(stored)
    dumped_orders = {o["client_order_id"] for o in dump["batch"]["orders"]}
    missing = seen.orders - await stored_order_ids(paper) - dumped_orders
    assert not missing, f"orders neither stored nor dumped: {missing}"
    assert isinstance(dump["batch"]["cash"], str)  # Decimals exact, as text
    # What the database holds is a consistent prefix: its cash, positions and fills agree.
    await db(assert_books_agree)(paper)

    # The operator's way back: the file as it is is refused (named), without the dust it is
    # stored, and then the database holds every fill the engine made.
    with pytest.raises(CommandError, match="fill_quantity_positive"):
        await db(call_command)("store_unsaved", str(path), "--dry-run")
    dump["batch"]["fills"] = [f for f in dumped if f["venue_trade_id"] != "dust-1"]
    path.write_text(json.dumps(dump))
    out = io.StringIO()
    await db(call_command)("store_unsaved", str(path), stdout=out)
    assert f"stored {len(dumped_orders)} orders, {len(dumped) - 1} fills" in out.getvalue()
    assert len(await stored_fill_ids(paper)) == seen.fills
    assert seen.orders <= await stored_order_ids(paper)
    await db(assert_books_agree)(paper)


async def test_an_outage_longer_than_the_limit_stops_the_engine_and_loses_nothing(paper):
    runtime, task = start(paper, write_outage_limit=1.0)
    seen = await trading(runtime, task)
    await db(refuse_updates)("trading_account", True)
    try:
        await until(lambda: not runtime.persistence.ok, "the engine notices")
        assert runtime.oms.mode(paper.name) is TradingMode.REDUCING
        await until(lambda: runtime._stop.is_set(), "the engine stops at the limit", 30)
        assert runtime.oms.mode(paper.name) is TradingMode.REDUCING
    finally:
        await db(refuse_updates)("trading_account", False)
    # The stopping engine stores what it holds once the database is back, then says why it stopped.
    with pytest.raises(WriteOutage, match="RRR_WRITE_OUTAGE_LIMIT"):
        await asyncio.wait_for(task, 60)
    assert runtime.persistence.unsaved_fills == 0
    assert len(await stored_fill_ids(paper)) == seen.fills
    assert seen.orders <= await stored_order_ids(paper)
    assert await has_state(paper, "reducing")
    assert any("RRR_WRITE_OUTAGE_LIMIT" in m for m in await messages(paper))
    await db(assert_books_agree)(paper)


async def test_an_outage_that_outlasts_the_shutdown_keeps_the_unsaved_state_in_a_file(
    paper, settings, tmp_path, monkeypatch
):
    settings.DATA_DIR = tmp_path
    monkeypatch.setattr(runtime_module, "SHUTDOWN_WRITE_TIMEOUT", 0.5)
    runtime, task = start(paper, write_outage_limit=1.0)
    seen = await trading(runtime, task)
    await db(refuse_updates)("trading_account", True)
    try:
        with pytest.raises(runtime_module.PersistenceFailed) as raised:
            await asyncio.wait_for(task, 60)
    finally:
        await db(refuse_updates)("trading_account", False)
    assert "writes refused by the test" in str(raised.value)
    dump = json.loads(Path(str(raised.value).rsplit("kept in ", 1)[1]).read_text())
    assert dump["refused"] is None
    stored = await stored_fill_ids(paper)
    assert len(stored) + len(dump["batch"]["fills"]) == seen.fills
    dumped_orders = {o["client_order_id"] for o in dump["batch"]["orders"]}
    assert not seen.orders - await stored_order_ids(paper) - dumped_orders


def _refusal(sql: str) -> DatabaseError:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        return exc
    raise AssertionError(f"the database took {sql!r}")


def test_which_refusals_are_for_good(paper):
    refused = _refusal("UPDATE trading_account SET leverage = 0")  # a CHECK constraint
    assert refused_for_good(refused)
    refuse_updates("trading_account", True)
    try:
        blocked = _refusal("UPDATE trading_account SET cash = cash")
    finally:
        refuse_updates("trading_account", False)
    assert not refused_for_good(blocked)  # a trigger's block: retried like an outage


def test_the_outage_limit_is_a_positive_number_of_seconds(monkeypatch):
    monkeypatch.delenv("RRR_WRITE_OUTAGE_LIMIT", raising=False)
    assert write_outage_limit(None) == 300.0
    monkeypatch.setenv("RRR_WRITE_OUTAGE_LIMIT", "45")
    assert write_outage_limit(None) == 45.0
    assert write_outage_limit(2.5) == 2.5
    monkeypatch.setenv("RRR_WRITE_OUTAGE_LIMIT", "five minutes")
    with pytest.raises(ValueError, match="RRR_WRITE_OUTAGE_LIMIT must be a number"):
        write_outage_limit(None)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="above 0"):
            write_outage_limit(bad)


def _refuse_fills(on: bool) -> None:
    """PostgreSQL: every fill insert fails a check (a trigger raising ``check_violation``)."""
    with connection.cursor() as cursor:
        if on:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION rrr_refuse_fill() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'fill refused by the test' USING ERRCODE = 'check_violation', "
                "CONSTRAINT = 'rrr_test_fill_check'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER rrr_refuse_fill BEFORE INSERT ON trading_fill "
                "FOR EACH ROW EXECUTE FUNCTION rrr_refuse_fill()"
            )
        else:
            cursor.execute("DROP TRIGGER rrr_refuse_fill ON trading_fill")


def test_runtrader_exits_non_zero_naming_the_refused_fill(subprocess_env, tmp_path):
    import os
    import subprocess
    import sys

    if connection.vendor != "postgresql":
        pytest.skip("a trigger raising a check violation is PostgreSQL's")
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    _refuse_fills(True)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "runtrader",
                "--paper",
                "--timeframe",
                "1s",
                "--strategy",
                "sma_cross",
                "--param",
                "fast=2",
                "--param",
                "slow=3",
                "--speed",
                "30",
                "--duration",
                "120",
                "--skip-checks",
            ],
            cwd=Path(__file__).resolve().parents[2],
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        _refuse_fills(False)
    assert result.returncode != 0
    assert "trading state not stored: the database refused fill" in result.stderr
    assert "fill refused by the test" in result.stderr
    assert "(constraint rrr_test_fill_check)" in result.stderr
    assert "the account is halted" in result.stderr
    (dump,) = (tmp_path / "unsaved").glob("paper-*.json")
    fills = json.loads(dump.read_text())["batch"]["fills"]
    assert fills and not Fill.objects.filter(
        venue_trade_id__in=[f["venue_trade_id"] for f in fills]
    )
    assert TradingState.objects.get(account__name="paper").state == "halted"


def _refuse_order_updates(on: bool) -> None:
    """PostgreSQL: every update of an order row fails a check (``check_violation``)."""
    with connection.cursor() as cursor:
        if on:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION rrr_refuse_order() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'order refused by the test' USING ERRCODE = 'check_violation', "
                "CONSTRAINT = 'rrr_test_order_check'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER rrr_refuse_order BEFORE UPDATE ON trading_order "
                "FOR EACH ROW EXECUTE FUNCTION rrr_refuse_order()"
            )
        else:
            cursor.execute("DROP TRIGGER rrr_refuse_order ON trading_order")


async def test_a_live_order_whose_write_ahead_is_refused_is_never_sent(paper, settings, tmp_path):
    from tests.fakes.exchange_binance import (
        API_KEY,
        API_SECRET,
        FakeBinanceExchange,
        binance_market,
    )
    from tests.runtime_harness import submit
    from trading.adapters.base import RetryPolicy
    from trading.adapters.ccxt_live import CcxtLiveVenue
    from trading.models import Account

    if connection.vendor != "postgresql":
        pytest.skip("a trigger raising a check violation is PostgreSQL's")
    settings.DATA_DIR = tmp_path
    account = await db(Account.objects.create)(
        name="live",
        mode="live",
        venue="binance",
        initial_capital=Decimal("100000"),
        cash=Decimal("100000"),
    )
    exchange = FakeBinanceExchange()
    await exchange.start()
    venue = CcxtLiveVenue(
        "binance",
        api_key=API_KEY,
        secret=API_SECRET,
        api_urls=exchange.ccxt_urls(),
        markets=[binance_market()],
        retry=RetryPolicy(max_retries=3, initial=0.05, maximum=0.2),
        timeout_ms=2_000,
        config={"enableRateLimit": False},
    )
    config = RuntimeConfig(
        account="live",
        symbols=["BTC-USD"],
        timeframe="1s",
        control_interval=0.1,
        flush_interval=0.05,
        store_market_data=False,
    )
    runtime = TradingRuntime(config, SimulatedFeed(["BTC-USD"], speed=5, seed=3), live=venue)
    task = asyncio.create_task(runtime.run(asyncio.Event()))
    try:
        await until(lambda: runtime.bridge is not None and runtime.summary.events > 10, "start")
        await db(_refuse_order_updates)(True)
        try:
            order = await submit(account, "buy", "0.01")
            with pytest.raises(PersistenceRefused) as raised:
                await asyncio.wait_for(task, 60)
        finally:
            await db(_refuse_order_updates)(False)
    finally:
        await venue.close()
        await exchange.stop()
    assert exchange.create_requests == 0, "an order left before it was stored"
    assert f"the database refused order {order.client_order_id.hex}" in str(raised.value)
    assert "rrr_test_order_check" in str(raised.value)
    assert await has_state(account, "halted")
