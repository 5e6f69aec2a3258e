"""``backfill --source tradingview --file`` and ``backfill --source onchain:*`` end to end."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, OnchainMetric
from tests.fakes.chains import EXCHANGE, FakeEsplora, FakeEthNode
from tests.fakes.threaded import served

T0 = datetime(2024, 3, 1, tzinfo=UTC)

# What "Export chart data…" writes for a 1h chart with the Volume and VWAP indicators on it.
TRADINGVIEW_EXPORT = """time,open,high,low,close,VWAP,Volume,Volume MA
1709251200,61000.5,61500,60800,61200,61110.2,120.5,100.1
1709254800,61200,61900,61100,61850,61300.7,98.25,101.3
1709258400,61850,62000,61400,61500,61400.1,143,104.9
"""
# A day of 1h BTC-USD bars from a TradingView export (``--file`` added).
TRADINGVIEW_DAY = ("--source", "tradingview", "--symbols", "BTC-USD", "--timeframe", "1h",
                   "--start", "2024-03-01", "--end", "2024-03-02")  # fmt: skip


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("backfill", *args, "--no-progress", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_tradingview_chart_export_is_imported(tmp_path):
    export = tmp_path / "COINBASE_BTCUSD, 60.csv"
    export.write_text(TRADINGVIEW_EXPORT)
    out = run(*TRADINGVIEW_DAY, "--file", str(export))
    assert "3 bars written" in out
    bars = list(Bar.objects.order_by("ts").values_list("ts", "open", "close", "volume", "vwap"))
    assert bars[0] == (T0, 61000.5, 61200.0, 120.5, None)  # the session VWAP is not the bar's
    assert [b[0].hour for b in bars] == [0, 1, 2]
    no_volume = tmp_path / "novol.csv"
    no_volume.write_text("time,open,high,low,close\n1709251200,1,1,1,1\n")
    with pytest.raises(CommandError, match="Volume"):
        run(*TRADINGVIEW_DAY, "--file", str(no_volume))
    with pytest.raises(CommandError, match="needs --file"):
        run(*TRADINGVIEW_DAY)


@pytest.mark.django_db(transaction=True)
def test_onchain_backfill_command_resumes(tmp_path):
    listed = tmp_path / "exchanges.txt"
    listed.write_text(f"# hot wallets\n{EXCHANGE}\n")
    with served(FakeEthNode(T0, tip=160)) as node:
        args = (
            "--source",
            "onchain:eth",
            "--url",
            node.url,
            "--timeframe",
            "5m",
            "--start",
            "2024-03-01T00:00",
            "--end",
            "2024-03-01T00:40",
            "--exchange-addresses",
            f"@{listed}",
        )
        first = run(*args)
        again = run(*args)
    assert "6 intervals stored from 150 blocks, 0 already stored, 2 not finished" in first
    assert "0 intervals stored from 0 blocks, 6 already stored, 2 not finished" in again
    assert OnchainMetric.objects.filter(chain="eth", timeframe="5m").count() == 6
    assert sum(OnchainMetric.objects.values_list("exchange_inflow", flat=True)) > 0


@pytest.mark.django_db(transaction=True)
def test_onchain_btc_command_and_refusals():
    with served(FakeEsplora(T0, tip=20)) as server:
        out = run(
            "--source",
            "onchain:btc",
            "--url",
            server.url,
            "--timeframe",
            "1h",
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-01T03:00",
        )
    assert "3 intervals stored" in out
    with pytest.raises(CommandError, match="--symbols does not apply"):
        run(
            "--source",
            "onchain:btc",
            "--symbols",
            "BTC-USD",
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-02",
        )
    with pytest.raises(CommandError, match="rerun to resume"):
        run(
            "--source",
            "onchain:btc",
            "--url",
            "http://127.0.0.1:9",
            "--timeframe",
            "1h",
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-02",
        )
