"""A run's trades stored in bulk (COPY on PostgreSQL) equal the rows ``bulk_create`` stores.

Same values after the database's own rounding (money has more digits than NUMERIC(28,10)
keeps, some exactly half-way), open trades' empty exits, UTC times to the microsecond, and text
that COPY's format must escape (tabs, newlines, backslashes) all come back as the ORM's path
stores them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from backtesting.engine.result import RoundTrip
from backtesting.models import BacktestRun, BacktestTrade
from backtesting.storage import trades_store

T0 = datetime(2024, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)
COLUMNS = [
    "symbol", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl",
    "return_pct", "fees", "bars_held",
]  # fmt: skip


def trips() -> list[RoundTrip]:
    return [
        RoundTrip("BTC-USD", "long", Decimal("0.12345678905"), T0, Decimal("50000.00000000005"),
                  T0 + timedelta(minutes=3), Decimal("50100.123456789049"),
                  Decimal("-12.34567890155"), Decimal("6.000000000050"), 3, -0.0123456789),
        RoundTrip("weird\tname\\with\nbreaks", "short", Decimal("1"), T0 - timedelta(days=9000),
                  Decimal("0.0000000001"), None, None, Decimal("0"), Decimal("0"), 0, 0.0),
        RoundTrip("ETH-USD", "long", Decimal("3.3333333333333333333"), T0,
                  Decimal("2999.99999999995"), T0 + timedelta(hours=1),
                  Decimal("3000.00000000015"), Decimal("0.00000000025"),
                  Decimal("0.00000000035"), 60, 1e-12),
    ]  # fmt: skip


def new_run() -> BacktestRun:
    return BacktestRun.objects.create(
        strategy="sma_cross", symbols=["BTC-USD"], start=T0, end=T0 + timedelta(days=1)
    )


def stored(run: BacktestRun) -> list[tuple]:
    return list(BacktestTrade.objects.filter(run=run).order_by("id").values_list(*COLUMNS))


@pytest.mark.django_db
def test_bulk_stored_trades_equal_what_the_orm_stores():
    ours, orm = new_run(), new_run()
    assert trades_store(run=ours, trades=trips()) == 3
    BacktestTrade.objects.bulk_create(
        BacktestTrade(run=orm, **{c: getattr(t, c) for c in COLUMNS}) for t in trips()
    )
    assert stored(ours) == stored(orm)
    # Rounded to the column's 10 places as each database rounds (PostgreSQL: half away from
    # zero; Django for SQLite: half even), the same on both paths.
    assert stored(ours)[0][2] in (Decimal("0.1234567891"), Decimal("0.1234567890"))
    assert stored(ours)[1][0] == "weird\tname\\with\nbreaks"
    assert stored(ours)[1][5] is None and stored(ours)[1][6] is None


@pytest.mark.django_db
def test_no_trades_store_nothing():
    run = new_run()
    assert trades_store(run=run, trades=[]) == 0
    assert not BacktestTrade.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_a_non_finite_amount_is_refused_as_the_orm_refuses_it():
    from django.core.exceptions import ValidationError

    run = new_run()
    bad = [trips()[0], RoundTrip("BTC-USD", "long", Decimal("1"), T0, Decimal("NaN"), None, None,
                                 Decimal("0"), Decimal("0"), 0, 0.0)]  # fmt: skip
    with pytest.raises(ValidationError):
        trades_store(run=run, trades=bad)
