"""``manage.py backtest`` text output: a table of a sweep's trials and Monte Carlo percentiles."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from backtesting.models import BacktestRun

pytestmark = pytest.mark.django_db(transaction=True)
BASE = ["--strategy", "sma_cross", "--symbols", "BTC-USD", "--timeframe", "1h",
        "--start", "2024-01-01", "--end", "2024-02-15", "--source", "sim"]  # fmt: skip


def test_a_sweep_prints_its_trials_best_first_and_the_monte_carlo_percentiles() -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "backtest", *BASE, "--optimize", "grid", "--space", "fast=5:10:5",
        "--space", "slow=20:30:10", "--montecarlo", "100", stdout=out, stderr=err,
    )  # fmt: skip
    text = out.getvalue()
    lines = text.splitlines()
    parent = BacktestRun.objects.get(parent__isnull=True, optimize="grid")
    search = parent.metrics["search"]

    header = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["fast", "slow", "score"]
    )
    assert lines[header - 1].strip().startswith("trials (4, by sharpe, best first)")
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    scores = sorted((t["score"] for t in search["trials"]), reverse=search["maximize"])
    assert [float(r[2]) for r in rows] == pytest.approx(scores, abs=1e-4)
    best = search["best_params"]
    assert rows[0][:2] == [str(best["fast"]), str(best["slow"])]
    assert {(int(r[0]), int(r[1])) for r in rows} == {(5, 20), (5, 30), (10, 20), (10, 30)}

    montecarlo = parent.metrics["montecarlo"]
    assert montecarlo, "the winner's Monte Carlo is stored"
    for method, summary in montecarlo.items():
        line = next(
            x for x in lines if x.strip().startswith(f"MC {method}"[:16]) and "final_eq" in x
        )
        for key, value in summary.items():
            if key.startswith("final_equity_p"):
                percentile = key.rsplit("_p", 1)[1]
                assert re.search(rf"p{re.escape(percentile)} {value:.4f}\b", line), (key, line)
    # Logs never reach the command's output: no JSON log lines among the figures.
    assert not [x for x in lines if x.lstrip().startswith("{")]


def test_profile_accounts_for_the_whole_command_by_phase() -> None:
    out = StringIO()
    call_command("backtest", *BASE, "--profile", "--json", stdout=out)
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert docs[0]["status"] == "completed"
    profile = docs[1]["profile"]
    phases = ["start-up", "checks", "load", "run", "montecarlo", "report", "store", "other"]
    assert list(profile) == [*phases, "total"]
    assert all(profile[p] >= 0 for p in phases)
    assert sum(profile[p] for p in phases) == pytest.approx(profile["total"])
    # The same phases in CPU seconds (the wall clock also counts other processes' turns).
    cpu = docs[1]["profile_cpu"]
    assert list(cpu) == [*phases, "total"]
    assert all(cpu[p] >= 0 for p in phases) and cpu["total"] > 0
    assert sum(cpu[p] for p in phases) == pytest.approx(cpu["total"])

    text = StringIO()
    call_command("backtest", *BASE, "--profile", stdout=text)
    lines = text.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("profile (seconds"))
    assert [line.split()[0] for line in lines[first + 1 :]] == phases
    assert all(line.split()[-2] == "cpu" for line in lines[first + 1 :])
