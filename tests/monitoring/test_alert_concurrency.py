"""Dedup is atomic in the database: raisers of the same new alert at the same instant (threads,
each with its own connection) open exactly one alert, send it once and count the rest."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction

from monitoring.alerts import alert_raise
from monitoring.models import Alert, AlertDelivery, AlertRule
from tests.fakes.notify import FakeAlertServices
from tests.fakes.threaded import served

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def slack(settings):
    server = FakeAlertServices()
    with served(server):
        settings.SLACK_WEBHOOK_BASE = f"{server.url}/services"
        AlertRule.objects.create(
            name="slack",
            channel="slack",
            target="https://hooks.slack.com/services/T000/B000/XXXX",
            cooldown_seconds=300,
            max_per_hour=0,
        )
        yield server


def _raise(i: int = 0) -> None:
    alert_raise(
        source="marketdata",
        kind="feed_stale",
        severity="error",
        account="paper",
        message=f"no data ({i})",
        now=T0 + timedelta(milliseconds=i),
    )


def _in_thread(target, errors: list) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _poll(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


class Died(Exception):
    """The first raiser's process dying mid-transaction (its transaction rolls back)."""


def _second_raiser_behind_a_held_first(*, first_dies: bool) -> bool:
    """Raise in a transaction held open, raise again from another thread while it is held, then
    end the first (commit, or die); return whether the second waited on the first's row lock."""
    if connection.vendor != "postgresql":
        pytest.skip("row-level waits are PostgreSQL's (SQLite takes the write lock at BEGIN)")
    first_raised, end_first, errors = threading.Event(), threading.Event(), []

    def first() -> None:
        with contextlib.suppress(Died), transaction.atomic():
            _raise(0)
            first_raised.set()
            end_first.wait(20)
            if first_dies:
                raise Died

    a = _in_thread(first, errors)
    assert first_raised.wait(20)
    b = _in_thread(lambda: _raise(1), errors)
    # The second raiser's insert blocks on the first's uncommitted row of the same fingerprint
    # (without the constraint it would not wait and would open a second alert).
    blocked = _poll(lambda: _lock_waiters() >= 1)
    end_first.set()
    a.join(20)
    b.join(20)
    assert not errors, errors
    return blocked


@pytest.mark.django_db(transaction=True)
def test_a_second_raiser_waits_on_the_first_insert_and_counts_into_its_alert(slack):
    """The exact interleaving the old select-then-insert lost: both look before either commits."""
    assert _second_raiser_behind_a_held_first(first_dies=False)
    alert = Alert.objects.get()
    assert (alert.occurrences, alert.deduplicated) == (2, 1)
    assert AlertDelivery.objects.count() == 1
    assert _poll(lambda: len(slack.slack) == 1)


@pytest.mark.django_db(transaction=True)
def test_a_burst_from_many_threads_at_once_sends_one_alert_and_counts_the_rest(slack):
    threads, per_thread = 4, 25
    barrier, errors = threading.Barrier(threads), []

    def burst(offset: int) -> None:
        barrier.wait(20)
        for i in range(per_thread):
            _raise(offset * per_thread + i)

    workers = [_in_thread(lambda n=n: burst(n), errors) for n in range(threads)]
    for worker in workers:
        worker.join(60)
    assert not errors, errors
    alert = Alert.objects.get()
    assert (alert.occurrences, alert.deduplicated) == (100, 99)
    assert AlertDelivery.objects.count() == 1
    assert len(slack.slack) == 1


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_a_second_unresolved_alert_but_not_after_resolving(slack):
    _raise(0)
    alert = Alert.objects.get()
    duplicate = {
        f: getattr(alert, f)
        for f in ("rule_id", "fingerprint", "source", "kind", "severity", "message")
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**duplicate, first_seen=T0, last_seen=T0)
    Alert.objects.filter(pk=alert.pk).update(state="resolved")
    Alert.objects.create(**duplicate, first_seen=T0, last_seen=T0)
    assert Alert.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_when_the_first_raiser_dies_mid_transaction_the_waiting_one_opens_and_sends(slack):
    """A raiser killed before commit (its transaction rolled back) leaves the alert to the next."""
    assert _second_raiser_behind_a_held_first(first_dies=True)
    alert = Alert.objects.get()
    assert (alert.occurrences, alert.deduplicated, alert.message) == (1, 0, "no data (1)")
    assert AlertDelivery.objects.count() == 1
    assert _poll(lambda: len(slack.slack) == 1)
