"""Planted structure is reachable from the command line (backfill/ingest --source sim)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from marketdata.management.commands.ingest import feed_for_command
from marketdata.models import Bar, Symbol
from research.engine.statarb import engle_granger

PAIR = "ETH-USD:BTC-USD:1.2:12:0.02"  # beta 1.2, half-life 12 h, spread sigma 0.02


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def stored_closes(symbol: str) -> np.ndarray:
    rows = Bar.objects.filter(symbol__name=symbol, timeframe="1h", simulated=True).order_by("ts")
    return np.array(rows.values_list("close", flat=True), dtype=float)


@pytest.mark.django_db
def test_backfill_plants_a_cointegrated_pair_in_the_stored_simulated_bars():
    run(
        "backfill",
        "--source",
        "sim",
        "--symbols",
        "BTC-USD,ETH-USD,SOL-USD",
        "--timeframe",
        "1h",
        "--start",
        "2024-01-01",
        "--end",
        "2024-03-24",
        "--plant-pair",
        PAIR,
        "--no-progress",
    )
    btc, eth, sol = (stored_closes(s) for s in ("BTC-USD", "ETH-USD", "SOL-USD"))
    assert len(btc) == len(eth) == len(sol) == 83 * 24
    planted = engle_granger(eth, btc, lags=1)
    assert planted.p_value < 0.01 and planted.hedge_ratio == pytest.approx(1.2, rel=0.1)
    assert engle_granger(sol, btc, lags=1).p_value > 0.01


@pytest.mark.django_db
@pytest.mark.parametrize(
    "spec,message",
    [
        ("ETH-USD", "expected FOLLOWER:LEADER"),
        ("ETH-USD:BTC-USD:x", "expected FOLLOWER:LEADER"),
        ("ETH-USD:BTC-USD:-1", "> 0"),
        ("XRP-USD:BTC-USD", "not simulated"),
    ],
)
def test_a_bad_planted_pair_is_one_clear_error_and_writes_nothing(spec, message):
    with pytest.raises(CommandError, match=message):
        run(
            "backfill",
            "--source",
            "sim",
            "--symbols",
            "BTC-USD",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
            "--plant-pair",
            spec,
            "--no-progress",
        )
    assert not Bar.objects.exists() and not Symbol.objects.exists()


def ingest_options(**extra) -> dict:
    options = {"url": None, "api_key": None, "speed": 0.0, "seed": 3}
    options.update({"plant_pair": [], "plant_impact": [], **extra})
    return options


@pytest.mark.django_db
def test_ingest_plants_a_flow_impact_and_a_pair_in_the_simulated_feed():
    options = ingest_options(plant_impact=["btc-usd:1.5"], plant_pair=["ETH-USD:BTC-USD"])
    feed = feed_for_command("sim", ["BTC-USD", "ETH-USD"], options)
    ((_, impact),) = feed.market.profile.impacts
    ((_, _, pair),) = feed.market.profile.pairs
    assert (impact.symbol, impact.coefficient) == ("BTC-USD", 1.5)
    assert (pair.follower, pair.leader, pair.beta, pair.half_life) == (
        "ETH-USD",
        "BTC-USD",
        1.0,
        6 * 3600.0,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "source,impact,message",
    [
        ("sim", "BTC-USD", "expected SYMBOL:COEFFICIENT"),
        ("sim", "BTC-USD:0", "> 0"),
        ("sim", "SOL-USD:1", "not simulated"),
        ("coinbase", "BTC-USD:1", "needs --source sim"),
    ],
)
def test_a_bad_planted_impact_is_one_clear_error_and_creates_no_symbol(source, impact, message):
    with pytest.raises(CommandError, match=message):
        run(
            "ingest",
            "--source",
            source,
            "--symbols",
            "BTC-USD",
            "--duration",
            "1",
            "--plant-impact",
            impact,
        )
    assert not Symbol.objects.exists()


@pytest.mark.django_db
def test_research_microstructure_recovers_a_planted_impact_from_stored_trades_and_books():
    """What ``ingest --source sim --plant-impact BTC-USD:1.5`` stores, the command measures."""
    from datetime import UTC, datetime

    from marketdata.engine.sim_model import FlowImpact
    from marketdata.engine.simulator import SimulatedMarket
    from marketdata.services import symbols_ensure
    from marketdata.storage import MarketDataStore

    start = datetime(2024, 3, 1, tzinfo=UTC)
    impact = FlowImpact("BTC-USD", 1.5)
    market = SimulatedMarket(
        ["BTC-USD"], seed=2, start=start, trades_per_step=2, impacts=[impact], book_every=5
    )
    symbols_ensure(["BTC-USD"])
    events = [e for e in market.events(4 * 3600) if type(e).__name__ != "SentimentReading"]
    MarketDataStore().write(events)
    out = run(
        "research",
        "microstructure",
        "--symbols",
        "BTC-USD",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-02",
        "--permutations",
        "20",
        "--no-report",
        "--json",
    )
    doc = json.loads(out.strip().splitlines()[-1])
    found = {f["title"]: f for f in doc["findings"]}
    kyle = found["BTC-USD Kyle's lambda"]
    assert kyle["significant"] and kyle["effect_size"] == pytest.approx(1.5, rel=0.1)
    assert found["BTC-USD book order-flow imbalance impact"]["significant"]
    assert "BTC-USD book depth imbalance -> next mid change" in found
    summary = doc["summary"]["BTC-USD"]
    assert summary["book_snapshots"] == 4 * 3600 // 5
    assert [h["hour"] for h in summary["by_hour"]] == [0, 1, 2, 3]
    assert all(h["book_ofi_impact"] > 0 for h in summary["by_hour"])


@pytest.mark.django_db
def test_research_pairs_plants_the_pair_in_the_simulated_bars_and_finds_it():
    out = run(
        "research",
        "pairs",
        "--source",
        "sim",
        "--symbols",
        "BTC-USD,ETH-USD,SOL-USD",
        "--start",
        "2024-01-01",
        "--end",
        "2024-03-24",
        "--plant-pair",
        PAIR,
        "--no-report",
        "--json",
    )
    doc = json.loads(out.strip().splitlines()[-1])
    significant = {f["title"] for f in doc["findings"] if f["significant"]}
    assert "Johansen basket BTC-USD/ETH-USD/SOL-USD: rank 1" in significant  # one relation
    significant = [t for t in significant if t.startswith(("pairs", "cointegration"))]
    assert significant in (
        ["pairs ETH-USD/BTC-USD, z 2.0/0.5"],
        ["pairs BTC-USD/ETH-USD, z 2.0/0.5"],
    )
    assert not Bar.objects.filter(simulated=False).exists()  # never in place of real history
    assert len(stored_closes("ETH-USD")) == 83 * 24


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args,message",
    [
        (["pairs", "--plant-pair", PAIR], "source sim"),
        (["pairs", "--source", "sim", "--plant-pair", "ETH-USD:XRP-USD"], "not simulated"),
        (["microstructure", "--plant-pair", PAIR], "ingest --source sim"),
        (["patterns", "--overlap", "none"], "invalid choice"),
    ],
)
def test_research_refuses_planting_where_it_cannot_apply(args, message):
    with pytest.raises(CommandError, match=message):
        run("research", *args, "--start", "2024-01-01", "--end", "2024-01-10")
    assert not Bar.objects.exists()
