"""The trade tally kept in the database: a new process reads it at once and extends it; the
figures are bit for bit those of ``summarize`` over a rebuild of every round trip
(``round_trips_of``) through partial closes, flips, fees, fills sharing a time across symbols,
late inserts, compaction and two processes extending the same checkpoint; a process killed
mid-update stores nothing."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.factories import AccountFactory, OrderFactory, SymbolFactory
from tests.rrr_site.trade_tally_helpers import T0, Seeder, identical, process, reference
from trading import trade_tally
from trading.models import Fill, TradeTally, TradeTallyTrips

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_tallies():
    trade_tally._TALLIES.clear()
    yield
    trade_tally._TALLIES.clear()


def stored_trips(account) -> np.ndarray:
    rows = TradeTallyTrips.objects.filter(tally__account=account).values_list("data", flat=True)
    return trade_tally._unpack(rows)


def test_figures_are_bit_for_bit_those_of_a_full_rebuild_across_processes(monkeypatch):
    monkeypatch.setattr(trade_tally, "CHUNK", 37)  # many stored steps per load
    monkeypatch.setattr(trade_tally, "COMPACT_AFTER", 6)  # and compactions
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=7)
    first, second = {}, {}
    batches = [400, 1, 0, 90, 250, 3, 500]
    for i, batch in enumerate(batches):
        seeder.add(batch)
        if i == 4:
            seeder.add(5, minute=10_000)  # late: stamped before the last fill tallied
        with process(first if i % 2 else second):
            got, note = trade_tally.trade_tally_extend(account=account)
        assert note == "" and identical(got, reference(account)), i
    assert got["trades"] >= 30 and got["profit_factor"] > 0
    row = TradeTally.objects.get(account=account)
    assert row.generation >= 2, "the late fill and the compactions each started a generation"
    trips = stored_trips(account)
    assert np.unique(trips["fill"]).size == trips.size, "no trip stored twice"
    assert TradeTallyTrips.objects.filter(tally=row).count() <= 7


def test_a_new_process_reads_the_stored_tally_and_only_the_fills_since(monkeypatch):
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=3)
    seeder.add(600)
    got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))
    seeder.add(5)
    monkeypatch.setattr(trade_tally, "CHUNK", 10)  # all 605 fills again would be 61 steps
    with process({}):  # a restart: nothing in memory
        got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))
    assert TradeTally.objects.get(account=account).version == 2


def test_a_copy_behind_the_checkpoint_stores_nothing_and_catches_up():
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=5)
    seeder.add(200)
    behind = {}
    with process(behind):
        trade_tally.trade_tally_extend(account=account)
    seeder.add(120)
    trade_tally.trade_tally_extend(account=account)  # another process extends the checkpoint
    version = TradeTally.objects.get(account=account).version
    stale = behind[account.pk]
    rows = trade_tally._new_fills(account.pk, stale.last, 10_000)
    assert not trade_tally._store(stale, trade_tally._advance(stale, rows))
    assert TradeTally.objects.get(account=account).version == version  # nothing stored
    seeder.add(30)
    with process(behind):  # reads what the other stored, then extends
        got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))
    trips = stored_trips(account)
    assert np.unique(trips["fill"]).size == trips.size


def test_hostile_stored_rows_are_never_counted_twice_after_a_reset():
    """A database restored from a backup (the last fill tallied is gone) starts again."""
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=13)
    seeder.add(150)
    trade_tally.trade_tally_extend(account=account)
    Fill.objects.filter(account=account).delete()
    seeder.add(80)
    with process({}):
        got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))
    got, note = trade_tally.trade_tally_extend(account=account)  # the first process, after a reset
    assert note == "" and identical(got, reference(account))


def test_a_checkpoint_deleted_or_put_back_is_read_again_not_added_to():
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=29)
    seeder.add(250)
    trade_tally.trade_tally_extend(account=account)
    TradeTally.objects.filter(account=account).delete()  # e.g. a table emptied by hand
    seeder.add(10)
    got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))
    row = TradeTally.objects.get(account=account)
    saved = (row.version, row.last_ts, row.last_fill, row.high_fill, row.flats)
    seeder.add(40)
    trade_tally.trade_tally_extend(account=account)
    TradeTallyTrips.objects.filter(tally=row, version__gt=saved[0]).delete()  # put back
    TradeTally.objects.filter(pk=row.pk).update(
        version=saved[0], last_ts=saved[1], last_fill=saved[2], high_fill=saved[3],
        flats=saved[4],
    )  # fmt: skip
    got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))


CHILD = """
import sys, time, django
django.setup()
from trading import trade_tally
from trading.models import Account
real = trade_tally._write_trips
def stuck(*args, **kwargs):
    real(*args, **kwargs)
    print("inside", flush=True)
    time.sleep(300)
trade_tally._write_trips = stuck
trade_tally.trade_tally_extend(account=Account.objects.get(pk=int(sys.argv[1])))
print("returned", flush=True)
"""


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_a_process_killed_mid_update_stores_nothing_and_the_next_load_is_exact(subprocess_env):
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=17)
    seeder.add(300)
    trade_tally.trade_tally_extend(account=account)
    before = TradeTally.objects.get(account=account)
    trips_before = stored_trips(account).size
    seeder.add(200)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(account.pk)], cwd=ROOT,
        env={**subprocess_env, "DJANGO_SETTINGS_MODULE": "rrr_site.settings"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = child.stdout.readline().strip()
        assert line == "inside", child.stderr.read()[-2000:]
        os.kill(child.pid, signal.SIGKILL)  # its transaction has written, not committed
        child.wait(timeout=30)
    finally:
        child.kill()
        child.communicate(timeout=30)
    after = TradeTally.objects.get(account=account)
    assert (after.generation, after.version) == (before.generation, before.version)
    assert stored_trips(account).size == trips_before
    for memory in ({}, None):  # a new process, then the one that stored the checkpoint
        with process(memory) if memory is not None else contextlib.nullcontext():
            got, note = trade_tally.trade_tally_extend(account=account)
        assert note == "" and identical(got, reference(account))
    trips = stored_trips(account)
    assert np.unique(trips["fill"]).size == trips.size > trips_before


def test_unreadable_stored_rows_start_the_tally_again():
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=19)
    seeder.add(200)
    trade_tally.trade_tally_extend(account=account)
    row = TradeTally.objects.get(account=account)
    for flats, data in (({"BTC-USD": ["not a time", 1, None]}, None),
                        ({"BTC-USD": 7}, None), (row.flats, b"\x00" * 3)):  # fmt: skip
        TradeTally.objects.filter(pk=row.pk).update(flats=flats)
        if data is not None:
            TradeTallyTrips.objects.create(tally=row, generation=0, version=0, trips=1, data=data)
            TradeTally.objects.filter(pk=row.pk).update(generation=0)
        before = TradeTally.objects.get(pk=row.pk).generation
        with process({}):
            got, note = trade_tally.trade_tally_extend(account=account)
        assert note == "" and identical(got, reference(account)), flats
        assert TradeTally.objects.get(pk=row.pk).generation > before, "started again"
        assert not TradeTallyTrips.objects.filter(data=b"\x00" * 3).exists()


def test_an_always_in_market_account_is_cut_at_each_flip():
    """A strategy that reverses (long to short and back) is never flat: its tail still starts
    at the last flip, so the stored trips cover all but the open trade."""
    account = AccountFactory(name="desk")
    symbol = SymbolFactory(name="BTC-USD")
    order = OrderFactory(account=account, symbol=symbol, status="filled")
    Fill.objects.bulk_create(
        Fill(order=order, account=account, symbol=symbol, side="buy" if i % 2 == 0 else "sell",
             quantity=Decimal(1 if i == 0 else 2), price=Decimal(100 + (i * 7) % 13),
             fee=Decimal("0.07"), venue_trade_id=f"t{i}", ts=T0 + timedelta(minutes=i))
        for i in range(301)
    )  # fmt: skip
    got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and got["trades"] == 300 and identical(got, reference(account))
    state = trade_tally._TALLIES[account.pk].symbols["BTC-USD"]
    assert len(state.tail) == 1 and state.tail[0].quantity == 1  # what the last flip opened
    with process({}):  # a new process rebuilds the remainder from the stored cut
        got, note = trade_tally.trade_tally_extend(account=account)
    assert note == "" and identical(got, reference(account))


def test_the_api_performance_trade_metrics_are_the_tally_s(client):
    from trading.models import PortfolioSnapshot
    from trading.portfolio_selectors import performance_of

    account = AccountFactory(name="desk")
    Seeder(account, seed=23).add(300)
    for hour in range(3):
        PortfolioSnapshot.objects.create(
            account=account, ts=T0 + timedelta(hours=hour), cash=Decimal(100000),
            equity=Decimal(100000 + hour), total_value=Decimal(100000 + hour), drawdown=0.0,
        )  # fmt: skip
    trade_tally.trade_tally_refresh(account.pk)  # the background task
    metrics = performance_of(account=account, bucket_seconds=3600)["metrics"]
    want = {k: (v if math.isfinite(v) else None) for k, v in reference(account).items()}
    assert {k: metrics[k] for k in want} == want
