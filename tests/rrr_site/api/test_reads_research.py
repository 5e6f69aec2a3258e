"""Reads of backtests, AI decisions and models, and the stats endpoint."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from backtesting.models import BacktestRun, BacktestTrade
from models_ml.models import Prediction
from tests.factories import MLModelFactory
from tests.rrr_site.api.conftest import T0

pytestmark = pytest.mark.django_db


def _run(**extra) -> BacktestRun:
    fields = {
        "strategy": "sma_cross", "symbols": ["BTC-USD"], "start": T0,
        "end": T0 + dt.timedelta(days=30), "status": "completed", "progress": 1.0,
        "metrics": {"total_return": 0.1, "sharpe": 1.2, "max_drawdown": 0.05, "trades": 1.0,
                    "buy_and_hold": {"total_return": 0.04}},
    }  # fmt: skip
    fields.update(extra)
    return BacktestRun.objects.create(**fields)


def test_backtests_list_and_detail(world, as_role):
    done = _run(report_path="/tmp/report.html", equity_curve=[[T0.isoformat(), 100000.0]])
    sweep = _run(optimize="grid", status="running")
    _run(parent=sweep)
    BacktestTrade.objects.create(
        run=done, symbol="BTC-USD", side="long", quantity=Decimal("0.5"), entry_ts=T0,
        entry_price=Decimal("100"), exit_ts=T0 + dt.timedelta(hours=1), exit_price=Decimal("110"),
        pnl=Decimal("4.9"), fees=Decimal("0.1"), return_pct=0.098, bars_held=1,
    )  # fmt: skip
    client = as_role("viewer")
    listed = client.get("/api/v1/backtests").json()["results"]
    assert [r["id"] for r in listed] == [sweep.pk, done.pk]  # trials stay under their sweep
    assert listed[1]["headline"]["sharpe"] == 1.2
    trials = client.get(f"/api/v1/backtests?sweep={sweep.pk}").json()["results"]
    assert len(trials) == 1
    assert len(client.get("/api/v1/backtests?status=completed").json()["results"]) == 1
    detail = client.get(f"/api/backtests/{done.pk}").json()
    assert detail["metrics"]["buy_and_hold"] == {"total_return": 0.04}
    assert detail["trades_total"] == 1 and detail["trades"][0]["pnl"] == "4.9000000000"
    assert detail["report_url"].endswith(f"/api/v1/backtests/{done.pk}/report")
    assert client.get("/api/v1/backtests/999999").status_code == 404
    assert client.get("/api/v1/backtests?status=bogus").status_code == 400


def test_decisions_filtered_and_models_with_baselines(world, as_role):
    metrics = {"model": {"accuracy": 0.55}, "baselines": {"always_long": {"accuracy": 0.52}},
               "verdict": "no edge"}  # fmt: skip
    old = MLModelFactory(name="btc-direction", version=1, metrics=metrics)
    new = MLModelFactory(name="btc-direction", version=2, active=True, metrics=metrics)
    for i in range(5):
        for model, symbol in ((old, world.btc), (new, world.btc), (new, world.eth)):
            Prediction.objects.create(
                model=model, symbol=symbol, ts=T0 + dt.timedelta(minutes=i), kind="direction",
                value=0.5 + i / 100, confidence=0.1,
            )  # fmt: skip
    client = as_role("viewer")
    page = client.get("/api/v1/ai/decisions", {"model": new.pk, "symbol": "ETH-USD"}).json()
    assert len(page["results"]) == 5 and {r["model_version"] for r in page["results"]} == {2}
    assert page["results"][0]["ts"] > page["results"][-1]["ts"]
    window = {"start": (T0 + dt.timedelta(minutes=1)).isoformat(),
              "end": (T0 + dt.timedelta(minutes=3)).isoformat(), "limit": 1}  # fmt: skip
    first = client.get("/api/v1/ai/decisions", window).json()
    seen = [r["id"] for r in first["results"]]
    nxt = first["next"]
    while nxt:
        body = client.get(nxt).json()
        seen += [r["id"] for r in body["results"]]
        nxt = body["next"]
    assert len(seen) == 6 == len(set(seen))  # minutes 1 and 2, three series each
    models = client.get("/api/v1/ai/models?active=true").json()["results"]
    assert [(m["version"], m["active"]) for m in models] == [(2, True)]
    assert models[0]["baselines"] == {"always_long": {"accuracy": 0.52}}
    assert models[0]["out_of_sample"] == {"accuracy": 0.55}


def test_stats_counts_only_your_accounts(world, as_role):
    body = as_role("viewer").get("/api/v1/stats").json()
    assert body["counts"]["accounts"] == 1 and body["counts"]["fills"] == 3
    assert body["counts"]["open_positions"] == 1
    assert body["engines_running"] == 0 and body["last_heartbeat"] is None
    assert body["queue_depth"] == 0
    other = as_role("other_trader").get("/api/v1/stats").json()
    assert other["counts"]["fills"] == 1
