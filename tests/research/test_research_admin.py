"""Admin: runs and findings are browsable; a finding's strategy is backtested from the list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from backtesting.models import BacktestRun
from research.models import Finding, ResearchRun
from tests.research.test_research_command import planted_market

pytestmark = pytest.mark.django_db


def test_backtest_action_runs_the_strategy_a_finding_proposes(admin_client):
    planted_market()
    run = ResearchRun.objects.create(
        kind="stat_arb",
        timeframe="1h",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 3, 1, tzinfo=UTC),
        summary={"report": "/tmp/report.html"},
    )
    params = {"symbol_a": "AAA-USD", "symbol_b": "BBB-USD", "entry": 2.0, "exit": 0.5}
    form = {"strategy": "pairs", "symbols": ["AAA-USD", "BBB-USD"], "params": params}
    with_form = Finding.objects.create(run=run, title="pairs", details={"strategy": form})
    without = Finding.objects.create(run=run, title="no strategy")

    assert admin_client.get(reverse("admin:research_researchrun_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:research_finding_changelist"))
    assert page.status_code == 200 and b"Backtest the proposed strategy" in page.content
    response = admin_client.post(
        reverse("admin:research_finding_changelist"),
        {"action": "backtest_strategy", "_selected_action": [with_form.pk, without.pk]},
        follow=True,
    )
    assert b"1 backtest(s) queued" in response.content
    backtest = BacktestRun.objects.get()  # tests run django-q inline
    assert backtest.strategy == "pairs" and backtest.status == "completed"
    assert backtest.params["symbol_b"] == "BBB-USD"
