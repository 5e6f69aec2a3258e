"""A research run reports its stages and the overfitting study's backtests one by one (the
command's progress bar feed, shown on a terminal only)."""

from __future__ import annotations

import datetime as dt

import pytest

from research.services import research_run_create, research_run_execute, study_params

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def reports_dir(settings, tmp_path):
    settings.REPORTS_DIR = tmp_path / "reports"


def test_overfitting_reports_each_trial_then_report_and_store():
    run = research_run_create(
        study="overfitting",
        symbols=["BTC-USD"],
        timeframe="1h",
        start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        end=dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
        params=study_params(
            "overfitting",
            source="sim",
            strategy="sma_cross",
            space=["fast=5:10:5", "slow=20:40:10"],
            blocks=8,
        ),
    )
    seen: list[tuple[str, int, int]] = []
    done = research_run_execute(run=run, progress=lambda *step: seen.append(step))
    assert done.status == "completed" and done.summary["trials"] == 6
    trials = [(d, t) for stage, d, t in seen if stage == "trials"]
    assert trials == [(i, 6) for i in range(7)]
    stages = [stage for stage, _, _ in seen if stage != "trials"]
    assert stages == ["study", "report", "store", "store"]
    assert seen[-1] == ("store", 1, 1)
