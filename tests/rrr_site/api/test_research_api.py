"""The research API: viewers read runs and findings; traders queue studies and backtests."""

from __future__ import annotations

import pytest

from backtesting.models import BacktestRun
from research.models import Finding, ResearchRun

pytestmark = pytest.mark.django_db

PLANTED = {
    "study": "pairs",
    "symbols": ["BTC-USD", "ETH-USD", "SOL-USD"],
    "timeframe": "1h",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-03-24T00:00:00Z",
    "source": "sim",
    "plant_pairs": ["ETH-USD:BTC-USD:1.2:12:0.02"],
}


@pytest.fixture(autouse=True)
def reports_dir(settings, tmp_path):
    settings.REPORTS_DIR = tmp_path / "reports"


def test_a_trader_queues_a_study_a_viewer_reads_it_and_a_trader_backtests_its_finding(as_role):
    trader, viewer = as_role("trader"), as_role("viewer")
    queued = trader.post("/api/v1/research/runs", PLANTED, format="json")
    assert queued.status_code == 202, queued.json()
    run_id = queued.json()["id"]
    assert queued.json()["status"] == "pending" and queued.json()["task"]
    # Tests run django-q synchronously: the worker has already executed the run.
    listed = viewer.get("/api/v1/research/runs?status=completed").json()["results"]
    assert [r["id"] for r in listed] == [run_id]
    detail = viewer.get(f"/api/research/runs/{run_id}").json()
    assert detail["has_report"] and "report" not in detail["summary"]  # no server paths
    assert detail["params"]["plant_pairs"] == PLANTED["plant_pairs"]
    pair = next(f for f in detail["findings"] if f["title"].startswith("pairs "))
    assert pair["significant"] and pair["has_strategy"] and pair["p_value"] < 0.01
    significant = viewer.get(f"/api/v1/research/findings?run={run_id}&significant=true")
    assert pair["id"] in [f["id"] for f in significant.json()["results"]]
    assert viewer.get(f"/api/v1/research/findings/{pair['id']}").json()["title"] == pair["title"]

    assert viewer.post(f"/api/v1/research/findings/{pair['id']}/backtest").status_code == 403
    backtest = trader.post(f"/api/v1/research/findings/{pair['id']}/backtest", {}, format="json")
    assert backtest.status_code == 202, backtest.json()
    (bt,) = BacktestRun.objects.all()
    assert bt.strategy == "pairs" and bt.status == "completed"
    assert set(bt.symbols) == {"BTC-USD", "ETH-USD"}


@pytest.mark.parametrize(
    "change,field",
    [
        ({"study": "astrology"}, "study"),
        ({"symbols": []}, "symbols"),
        ({"start": "yesterday"}, "start"),
        ({"alpha": 2}, "alpha"),
        ({"end": "2023-01-01T00:00:00Z"}, "non_field_errors"),
        ({"source": "database"}, "non_field_errors"),  # planting needs the simulated market
        ({"plant_pairs": ["ETH-USD"]}, "non_field_errors"),
        ({"study": "overfitting"}, "non_field_errors"),  # needs a strategy
    ],
)
def test_bad_input_is_a_400_with_field_errors_and_writes_nothing(as_role, change, field):
    answer = as_role("trader").post("/api/v1/research/runs", {**PLANTED, **change}, format="json")
    assert answer.status_code == 400 and field in answer.json(), answer.json()
    assert not ResearchRun.objects.exists()


def test_roles_and_missing_rows(as_role):
    run = ResearchRun.objects.create(kind="stat_arb", title="t", status="completed")
    plain = Finding.objects.create(run=run, title="cointegration A/B", p_value=0.5)
    assert as_role("anonymous").get("/api/v1/research/runs").status_code == 401
    assert (
        as_role("viewer").post("/api/v1/research/runs", PLANTED, format="json").status_code == 403
    )
    assert as_role("viewer").get("/api/v1/research/runs/999999").status_code == 404
    assert as_role("viewer").get("/api/v1/research/findings/999999").status_code == 404
    trader = as_role("trader")
    assert trader.post("/api/v1/research/findings/999999/backtest").status_code == 404
    refused = trader.post(f"/api/v1/research/findings/{plain.pk}/backtest")
    assert refused.status_code == 400 and "no strategy" in str(refused.json())
    assert as_role("viewer").get("/api/v1/research/findings?significant=maybe").status_code == 400
    assert not BacktestRun.objects.exists()
