"""A TWAP parent a strategy starts inside runtrader is stored with its first children and resumed
after a restart (in-process restart and a real ``runtrader`` SIGKILLed mid-TWAP): the children
fill exactly the parent's quantity, none sent twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from tests.polling import wait_for
from tests.runtime_harness import db, running, until
from trading.engine.algo_book import algo_child_id
from trading.engine.strategies import STRATEGIES, register
from trading.engine.strategy import Strategy
from trading.models import Fill, Order

ROOT = Path(__file__).resolve().parents[2]
QUANTITY = Decimal("0.1")
SLICES = 10

STRATEGY_SOURCE = '''
from decimal import Decimal

from trading.engine.strategy import Strategy


class TwapOnce(Strategy):
    """Buys {qty} BTC-USD in a {slices}-slice TWAP over {duration} s, while it holds none."""

    default_params = {{"duration": {duration}}}

    def on_bar(self, bar, ctx) -> None:
        if bar.symbol != "BTC-USD" or getattr(self, "started", False):
            return
        self.started = True
        if ctx.position("BTC-USD") == 0:  # after a restart the stored parent carries on
            ctx.buy("BTC-USD", Decimal("{qty}"), algo="twap",
                    duration=self.params["duration"], slices={slices})
'''


def strategy_file(folder: Path, duration: float) -> str:
    """Write the TWAP strategy where a runtrader subprocess can load it; return its spec."""
    path = folder / "twap_once.py"
    path.write_text(STRATEGY_SOURCE.format(qty=QUANTITY, slices=SLICES, duration=duration))
    return f"{path}:TwapOnce"


if "test_twap_once" not in STRATEGIES:
    namespace: dict = {}
    exec(textwrap.dedent(STRATEGY_SOURCE.format(qty=QUANTITY, slices=SLICES, duration=40)),
         namespace)
    register("test_twap_once")(namespace["TwapOnce"])

assert issubclass(STRATEGIES["test_twap_once"], Strategy)


def _parents(account) -> list[Order]:
    return [o for o in Order.objects.filter(account=account) if "algo" in (o.metadata or {})]


def _children(parent: Order) -> list[Order]:
    ids = [algo_child_id(parent.client_order_id.hex, n) for n in range(SLICES + 1)]
    return list(Order.objects.filter(client_order_id__in=ids).order_by("created_at"))


def _filled(orders: list[Order]) -> Decimal:
    return sum((f.quantity for f in Fill.objects.filter(order__in=orders)), Decimal(0))


def _filled_children(account, count: int) -> bool:
    parents = _parents(account)
    return bool(parents) and sum(c.status == "filled" for c in _children(parents[0])) >= count


def _account_fills(account) -> Decimal:
    return sum((f.quantity for f in Fill.objects.filter(account=account)), Decimal(0))


def _check_done_once(account) -> None:
    """One parent, filled; its children filled exactly its quantity, each child id once."""
    parents = _parents(account)
    assert len(parents) == 1, [p.metadata for p in parents]
    parent = parents[0]
    assert parent.status == "filled" and parent.filled_quantity == QUANTITY
    assert parent.strategy and "algo_started" in parent.metadata
    children = _children(parent)
    ids = [c.client_order_id for c in children]
    # Slices that came due while no engine ran are caught up by the next child: fewer, larger.
    assert len(ids) == len(set(ids)) <= SLICES
    assert _filled(children) == QUANTITY
    assert _account_fills(account) == QUANTITY  # nothing else bought: no second parent


async def test_a_strategy_twap_is_stored_with_its_children_and_resumed_after_a_restart(paper):
    async with running(paper, strategy="test_twap_once") as runtime:
        await until(lambda: db(_filled_children)(paper, 2), "two children filled", timeout=60)
        parent = (await db(_parents)(paper))[0]
        assert parent.status == "open" and parent.metadata["algo"]["kind"] == "twap"
        assert runtime.runner.algos.active
    before = await db(_children)(parent)
    assert 2 <= len(before) < SLICES and await db(_filled)(before) < QUANTITY
    async with running(paper, strategy="test_twap_once"):  # restart: the parent carries on
        await until(lambda: _parent_filled(parent), "parent filled", timeout=90)
    after = await db(_children)(parent)
    assert [c.client_order_id for c in after[: len(before)]] == [
        c.client_order_id for c in before
    ]
    await db(_check_done_once)(paper)


async def _parent_filled(parent: Order) -> bool:
    return await db(lambda: Order.objects.get(pk=parent.pk).status)() == "filled"


@pytest.mark.django_db(transaction=True)
def test_sigkill_of_runtrader_mid_twap_then_restart_fills_the_parent_exactly_once(
    subprocess_env, paper, tmp_path
):
    spec = strategy_file(tmp_path, duration=20)
    # --skip-checks: the system checks' URL imports (the research stack) would double each start.
    run = [sys.executable, "manage.py", "runtrader", "--paper", "--timeframe", "1s",
           "--symbols", "BTC-USD", "--speed", "1", "--strategy", spec, "--skip-checks"]
    proc = subprocess.Popen(run, cwd=ROOT, env=subprocess_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _filled_children(paper, 2) or proc.poll() is not None, 120,
                 "two children filled")
        assert proc.poll() is None, proc.stderr.read()[-3000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    parent = _parents(paper)[0]
    assert parent.status == "open", parent.status
    sent = _children(parent)
    assert _filled(sent) < QUANTITY, "the TWAP finished before the kill: nothing tested"
    log = tmp_path / "restart.log"
    with log.open("w") as err:
        again = subprocess.Popen(run, cwd=ROOT, env=subprocess_env, stdout=subprocess.DEVNULL,
                                 stderr=err)
    try:
        # Polled, not a fixed 40 s run: until the parent is filled and its schedule is over (no
        # slice is due after that), then a clean stop that stores everything.
        wait_for(lambda: _schedule_done(parent) or again.poll() is not None, 240,
                 "the parent filled and its schedule over")
        assert again.poll() is None, log.read_text()[-3000:]
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(timeout=60)
    assert again.returncode == 0, log.read_text()[-3000:]
    parent.refresh_from_db()
    _check_done_once(paper)
    assert [c.client_order_id for c in _children(parent)[: len(sent)]] == [
        c.client_order_id for c in sent
    ]


def _schedule_done(parent: Order) -> bool:
    """The parent is filled and its TWAP's last slice time has passed (speed 1: wall time)."""
    parent.refresh_from_db()
    if parent.status != "filled":
        return False
    started = datetime.fromisoformat(parent.metadata["algo_started"])
    return timezone.now() > started + timedelta(seconds=parent.metadata["algo"]["duration"])


async def test_an_operator_cancel_stops_a_running_twap_parent(paper):
    from tests.runtime_harness import submit
    from trading.services import orders_cancel

    async with running(paper) as runtime:
        parent = await submit(paper, "buy", "0.1", algo="twap", duration=60, slices=10)
        await until(lambda: db(_filled_children)(paper, 1), "a child filled", timeout=60)
        await db(orders_cancel)(order_ids=[parent.pk], actor=None)
        await until(lambda: _has_status(parent, "cancelled"), "parent cancelled", timeout=30)
        assert not runtime.runner.algos.active
        sent = len(await db(_children)(parent))
        later = runtime.session.now + timedelta(seconds=12)  # two more slices were due by then
        await until(lambda: runtime.session.now >= later, "two slice intervals passed")
        batches = runtime.summary.batches
        await until(lambda: runtime.summary.batches >= batches + 2, "what they sent stored")
        assert len(await db(_children)(parent)) == sent, "children sent after the cancel"
    stored = await db(Order.objects.get)(pk=parent.pk)
    assert Decimal(0) < stored.filled_quantity < QUANTITY
    assert stored.filled_quantity == await db(_filled)(await db(_children)(parent))


async def _has_status(order: Order, status: str) -> bool:
    return await db(lambda: Order.objects.get(pk=order.pk).status)() == status
