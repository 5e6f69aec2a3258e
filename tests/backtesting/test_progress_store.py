"""Progress marks: recorded while the run runs, refused once it is cancelled, never durable-less
beyond their own transaction (PostgreSQL skips the WAL flush for a mark alone, not for the
caller's transaction or the session)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from backtesting.choices import RunStatus
from backtesting.models import BacktestRun
from backtesting.services import _progress_store

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_mark_is_stored_while_running_and_refused_once_cancelled():
    run = BacktestRun.objects.create(
        strategy="sma_cross", symbols=["BTC-USD"], start=T0, end=T0 + timedelta(days=1),
        status=RunStatus.RUNNING,
    )  # fmt: skip
    assert _progress_store(run.pk, 0.25) is True
    run.refresh_from_db()
    assert run.progress == 0.25
    BacktestRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    assert _progress_store(run.pk, 0.5) is False
    run.refresh_from_db()
    assert run.progress == 0.25
    if connection.vendor == "postgresql":
        assert synchronous_commit() == "on"  # SET LOCAL ended with the mark's transaction
        with transaction.atomic():  # inside a caller's transaction: that one's rules hold
            BacktestRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
            assert _progress_store(run.pk, 0.75) is True
            assert synchronous_commit() == "on"
