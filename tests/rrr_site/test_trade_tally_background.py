"""The trade tally runs in the background: a page load reads the figures the refresh task
stored (two rows, never the stored trips nor a fill's data) with their age and queues a refresh
when fills came since; the every-minute schedule refreshes every account that is behind."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import Schedule

from tests.factories import AccountFactory, OrderFactory
from tests.rrr_site.trade_tally_helpers import T0, Seeder, identical, reference
from trading import trade_tally
from trading.models import Fill, TradeTally

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_tallies():
    trade_tally._TALLIES.clear()
    cache.clear()
    yield
    trade_tally._TALLIES.clear()
    cache.clear()


def test_a_load_reads_the_stored_figures_and_never_the_trips_or_the_fills():
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=3)
    seeder.add(300)
    assert trade_tally.trade_tally_refresh(account.pk)
    before = reference(account)
    seeder.add(200)  # stored since the refresh
    with CaptureQueriesContext(connection) as queries:
        shown = trade_tally.trade_metrics(account=account, refresh=False)
    sql = [q["sql"].lower() for q in queries.captured_queries]
    assert len(sql) == 2, sql  # the checkpoint, and whether a fill came since
    assert not any("tradetallytrips" in q for q in sql)
    assert not any('"price"' in q for q in sql)  # no fill's data read
    assert shown.behind and shown.note == "" and identical(shown.figures, before)
    assert shown.as_of == TradeTally.objects.get(account=account).figures_at
    assert trade_tally.trade_tally_refresh(account.pk)  # the task catches up
    after = trade_tally.trade_metrics(account=account, refresh=False)
    assert not after.behind and identical(after.figures, reference(account))
    assert after.as_of >= shown.as_of


def test_a_load_behind_the_fills_queues_one_refresh_and_the_next_load_shows_it():
    account = AccountFactory(name="desk")
    seeder = Seeder(account, seed=11)
    seeder.add(120)
    waiting = trade_tally.trade_metrics(account=account)
    assert waiting.figures is None and waiting.note == trade_tally.WAITING and waiting.behind
    # Tests run django-q2 tasks inline: the queued refresh ran and cleared its marker.
    shown = trade_tally.trade_metrics(account=account)
    assert not shown.behind and identical(shown.figures, reference(account))
    seeder.add(40)
    assert trade_tally.trade_metrics(account=account).behind  # read as stored, refresh queued
    assert identical(trade_tally.trade_metrics(account=account).figures, reference(account))
    # While a refresh is queued (not run yet), loads queue no second one.
    cache.add(trade_tally._refresh_key(account.pk), 1, 60)
    assert not trade_tally.trade_tally_request(account_id=account.pk)
    cache.delete(trade_tally._refresh_key(account.pk))
    assert trade_tally.trade_tally_request(account_id=account.pk)


def test_non_finite_figures_survive_the_stored_json_bit_for_bit():
    account = AccountFactory(name="winner")
    seeder = Seeder(account, seed=1)
    order = OrderFactory(account=account, symbol=seeder.symbols[0], status="filled")
    for i, (side, price) in enumerate([("buy", 100), ("sell", 110), ("buy", 100), ("sell", 120)]):
        Fill.objects.create(
            order=order, account=account, symbol=seeder.symbols[0], side=side,
            quantity=Decimal(1), price=Decimal(price), fee=Decimal(0), venue_trade_id=f"w{i}",
            ts=T0 + timedelta(minutes=i),
        )  # fmt: skip
    trade_tally.trade_tally_refresh(account.pk)
    want = reference(account)
    assert not all(math.isfinite(v) for v in want.values())  # no loss: inf and NaN figures
    got = trade_tally.trade_metrics(account=account, refresh=False).figures
    assert identical(got, want) and got["trades"] == 2


def test_an_account_without_fills_shows_no_trade_and_queues_nothing():
    account = AccountFactory(name="idle")
    shown = trade_tally.trade_metrics(account=account)
    assert shown.note == "" and not shown.behind and shown.figures["trades"] == 0
    assert not TradeTally.objects.exists() and trade_tally.trade_tallies_refresh() == []


def test_the_minute_schedule_refreshes_only_accounts_behind_their_fills(monkeypatch):
    monkeypatch.setattr(trade_tally, "CHUNK", 50)  # many stored steps
    monkeypatch.setattr(trade_tally, "COMPACT_AFTER", 3)  # and a compaction, in the task
    busy, quiet = AccountFactory(name="busy"), AccountFactory(name="quiet")
    busy_fills = Seeder(busy, seed=5)
    busy_fills.add(400)
    assert trade_tally.trade_tallies_refresh() == [busy.pk]
    assert trade_tally.trade_tallies_refresh() == []  # nothing new
    Seeder(quiet, seed=6).add(30)
    busy_fills.add(5, minute=10_000)  # late: stamped before the last fill tallied
    assert trade_tally.trade_tallies_refresh() == [busy.pk, quiet.pk]
    for account in (busy, quiet):
        shown = trade_tally.trade_metrics(account=account, refresh=False)
        assert not shown.behind and identical(shown.figures, reference(account))
    # A database put back from a backup: the last fills tallied are gone, none is new.
    newest = Fill.objects.filter(account=busy).order_by("-pk").values_list("pk", flat=True)
    Fill.objects.filter(pk__in=list(newest[:60])).delete()
    assert trade_tally.trade_tallies_refresh() == [busy.pk]
    shown = trade_tally.trade_metrics(account=busy, refresh=False)
    assert identical(shown.figures, reference(busy))


def test_bootstrap_schedules_the_refresh_every_minute():
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    schedule = Schedule.objects.get(name="trade tallies")
    assert schedule.func == "trading.trade_tally.trade_tallies_refresh"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
