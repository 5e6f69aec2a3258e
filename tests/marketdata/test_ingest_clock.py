"""A sped-up simulated ingest never stores anything stamped after the wall clock."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db.models import Max

from marketdata.models import Bar, TradeTick

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("speed", ["0", "600"])
def test_sped_up_sim_ingest_stores_nothing_ahead_of_now(transactional_db, speed):
    out = io.StringIO()
    call_command(
        "ingest", "--source", "sim", "--symbols", "BTC-USD", "--speed", speed,
        "--duration", "2", stdout=out,
    )  # fmt: skip
    finished = datetime.now(UTC)
    newest_trade = TradeTick.objects.aggregate(ts=Max("ts"))["ts"]
    assert newest_trade is not None, out.getvalue()
    assert newest_trade <= finished
    newest_bar = Bar.objects.aggregate(ts=Max("ts"))["ts"]
    assert newest_bar is None or newest_bar <= finished
    # The simulated session ran in the past: its bars are stored marked simulated.
    assert not Bar.objects.filter(simulated=False).exists()
