"""``manage.py research``: studies write runs, findings and reports; bad input writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from backtesting.models import BacktestRun
from marketdata.models import Bar, Quote, TradeTick
from marketdata.services import symbols_ensure
from research.models import Finding, ResearchRun
from tests.research.engine.test_microstructure import impact_trades
from tests.research.synthetic import cointegrated_pair, hourly_bars, random_walk_prices

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
WINDOW = ["--timeframe", "1h", "--start", "2024-01-01", "--end", "2024-03-01"]


@pytest.fixture(autouse=True)
def reports_dir(settings, tmp_path):
    """Reports go to a temporary folder."""
    settings.REPORTS_DIR = tmp_path / "reports"
    return settings.REPORTS_DIR


def store_bars(symbol: str, closes: np.ndarray) -> None:
    """Store hourly bars with these closes from 2024-01-01."""
    (sym,) = symbols_ensure([symbol])
    frame = hourly_bars(closes, symbol)
    Bar.objects.bulk_create(
        Bar(
            symbol=sym,
            timeframe="1h",
            ts=r.ts,
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
        )
        for r in frame.itertuples()
    )


def research(*args: str) -> str:
    """Run the command and return its stdout."""
    out = StringIO()
    call_command("research", *args, stdout=out)
    return out.getvalue()


def planted_market() -> None:
    """AAA/BBB cointegrated by construction; CCC an independent random walk (1416 bars)."""
    a, b = cointegrated_pair(1416, seed=31)
    store_bars("AAA-USD", a)
    store_bars("BBB-USD", b)
    store_bars("CCC-USD", random_walk_prices(1416, np.random.default_rng(32)))


def test_pairs_finds_the_planted_pair_writes_findings_and_a_report_and_backtests_it(reports_dir):
    planted_market()
    out = research("pairs", "--symbols", "AAA-USD,BBB-USD,CCC-USD", *WINDOW, "--json")
    doc = json.loads(out.strip().splitlines()[-1])
    run = ResearchRun.objects.get(pk=doc["run"])
    assert run.status == "completed" and run.kind == "stat_arb"
    assert run.summary["pairs"] == 3 and run.summary["significant"] == 1
    found = Finding.objects.get(run=run, significant=True, title__startswith="pairs")
    basket = Finding.objects.get(run=run, title__startswith="Johansen")
    assert basket.significant and basket.effect_size >= 1
    assert found.title == "pairs AAA-USD/BBB-USD, z 2.0/0.5"
    assert found.p_value < 0.01 and found.details["holdout_confirmed"] is True
    assert found.details["strategy"]["params"]["symbol_b"] == "BBB-USD"
    assert Finding.objects.filter(run=run).count() == 4  # 3 pairs + the Johansen basket
    report = Path(run.summary["report"])
    assert report.parent == Path(reports_dir).resolve() and "plotly" in report.read_text()

    out = research("backtest", "--finding", str(found.pk), *WINDOW, "--json")
    backtest = BacktestRun.objects.get(pk=json.loads(out.strip().splitlines()[-1])["backtest"])
    assert backtest.strategy == "pairs" and backtest.status == "completed"
    assert backtest.symbols == ["AAA-USD", "BBB-USD"] and backtest.trades.exists()


def test_microstructure_recovers_the_planted_impact_from_stored_trades_and_quotes():
    (sym,) = symbols_ensure(["AAA-USD"])
    trades = impact_trades(3000, 0.02, seed=33)
    TradeTick.objects.bulk_create(
        TradeTick(
            symbol=sym,
            venue="sim",
            trade_id=str(i),
            ts=ts,
            price=r["price"],
            size=r["size"],
            side=r["side"],
        )
        for i, (ts, r) in enumerate(trades.iterrows())
    )
    Quote.objects.bulk_create(
        Quote(
            symbol=sym,
            venue="sim",
            ts=ts - pd.Timedelta("1ms"),
            bid=r.price - 0.01,
            bid_size=1.0,
            ask=r.price + 0.01,
            ask_size=1.0,
        )
        for ts, r in trades.iloc[::10].iterrows()
    )
    out = research(
        "microstructure", "--symbols", "AAA-USD", *WINDOW, "--permutations", "20", "--json"
    )
    doc = json.loads(out.strip().splitlines()[-1])
    titles = {f["title"]: f for f in doc["findings"]}
    kyle = titles["AAA-USD Kyle's lambda"]
    assert kyle["effect_size"] == pytest.approx(0.02, rel=0.1) and kyle["significant"]
    assert kyle["details"]["permutation_p"] < 0.05
    assert {"AAA-USD effective spread", "AAA-USD order-flow imbalance impact"} <= set(titles)


def test_patterns_and_overfitting_run_on_the_simulated_market():
    out = research(
        "patterns",
        "--symbols",
        "BTC-USD",
        *WINDOW,
        "--source",
        "sim",
        "--horizons",
        "1,10",
        "--no-candles",
        "--no-report",
        "--json",
    )
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["status"] == "completed" and doc["summary"]["tests"] == len(doc["findings"]) > 0
    out = research(
        "overfitting",
        "--symbols",
        "BTC-USD",
        *WINDOW,
        "--source",
        "sim",
        "--strategy",
        "sma_cross",
        "--space",
        "fast=5:10:5",
        "--space",
        "slow=20:40:10",
        "--blocks",
        "8",
        "--no-report",
        "--json",
    )
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["kind"] == "hypothesis" and doc["summary"]["trials"] == 6
    assert 0 <= doc["summary"]["pbo"] <= 1 and "deflated_sharpe" in doc["summary"]
    (best,) = [f for f in doc["findings"] if f["title"].startswith("best of 6")]
    assert best["p_value"] is not None and best["details"]["spa_p"] is not None
    assert len(doc["findings"]) == 7  # the winner, then each trial's Holm-corrected mean test


def test_async_queues_a_django_q_task():
    planted_market()
    out = research(
        "pairs", "--symbols", "AAA-USD,BBB-USD", *WINDOW, "--async", "--no-report", "--json"
    )
    run = ResearchRun.objects.get(pk=json.loads(out.strip().splitlines()[-1])["run"])
    # Tests run django-q synchronously, so the task has already finished.
    assert run.status == "completed" and run.findings.exists()


def test_the_command_exits_non_zero_with_one_line_in_a_real_process(subprocess_env):
    done = subprocess.run(
        [sys.executable, "manage.py", "research", "pairs", "--symbols", "AAA-USD", *WINDOW],
        cwd=ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["CommandError: pairs needs at least 2 distinct symbol(s), got ['AAA-USD']"]
