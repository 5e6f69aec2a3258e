"""A strategy that fails moves its account to reducing, and the account stays reducing across
restarts until a person resumes it: the state is stored and audited, every engine reads it at
start, ``runtrader`` and the dashboard say why and how to resume, and a trader's resume through
the API reaches the running engine (audited under the trader's name)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from rest_framework.test import APIClient

from monitoring.models import AuditLog
from risk.models import TradingState
from tests.factories import UserFactory
from tests.runtime_harness import db, running, until
from tests.trading.strategy_failures import runtrader_until_strategy_fails, strategy_file
from tests.trading.test_strategy_errors import RAISES
from trading.engine.hooks import TradingMode
from trading.runtime_control import trading_state_notice

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _trader(account) -> APIClient:
    user = UserFactory(username="dana")
    user.groups.add(Group.objects.get_or_create(name="trader")[0])
    account.members.add(user)
    client = APIClient()
    client.force_authenticate(user)
    return client


def _resume(account) -> int:
    return _trader(account).post(f"/api/v1/accounts/{account.pk}/resume", {}, format="json")


@pytest.mark.usefixtures("close_thread_connections")
async def test_a_failed_strategy_keeps_its_account_reducing_across_a_restart(paper, tmp_path):
    spec, _ = strategy_file(tmp_path, RAISES, "RaisesLater")
    await runtrader_until_strategy_fails(paper, spec, after=2)
    moved = await db(AuditLog.objects.get)(action="trading_state.set")
    assert moved.actor_repr == "risk-engine" and moved.after["state"] == "reducing"
    assert "RaisesLater" in moved.after["reason"]
    # The engine restarts (a deploy, a crash) without the failing strategy: still reducing.
    async with running(paper) as runtime:
        assert runtime.oms.mode(paper.name) is TradingMode.REDUCING
        events = runtime.summary.events
        await until(lambda: runtime.summary.events > events + 30, "control polls")
        assert runtime.oms.mode(paper.name) is TradingMode.REDUCING
        notice = await db(trading_state_notice)(account=paper)
        assert notice.startswith("account 'paper' is REDUCING since ")
        assert "RaisesLater" in notice and f"/api/v1/accounts/{paper.pk}/resume" in notice
        # A trader resumes it: the running engine follows, audited under the trader's name.
        answer = await db(_resume)(paper)
        assert answer.status_code == 200 and answer.json()["state"] == "active"
        await until(lambda: runtime.oms.mode(paper.name) is TradingMode.ACTIVE, "resumed")
    resumed = await db(AuditLog.objects.filter(action="trading_state.set").first)()
    assert resumed.actor_repr == "dana" and resumed.after["state"] == "active"
    assert await db(trading_state_notice)(account=paper) == ""
    async with running(paper) as runtime:  # and the next start is active
        assert runtime.oms.mode(paper.name) is TradingMode.ACTIVE


def test_runtrader_says_why_the_account_reduces_and_how_to_resume_it(paper):
    TradingState.objects.filter(account=paper).update(
        state="reducing", reason="strategy: strategy 'RaisesLater' stopped: ZeroDivisionError"
    )
    out = io.StringIO()
    call_command("runtrader", "--paper", "--duration", "2", stdout=out, stderr=io.StringIO())
    lines = [line for line in out.getvalue().splitlines() if "is REDUCING since" in line]
    assert len(lines) == 2, out.getvalue()  # at start and at the end
    assert "RaisesLater" in lines[0] and "Resume button" in lines[0]
    assert TradingState.objects.get(account=paper).state == "reducing"  # a run never resumes


def test_the_overview_shows_the_reason_and_the_way_back(paper, client):
    TradingState.objects.filter(account=paper).update(state="reducing", reason="feed: it died")
    user = UserFactory(username="vic")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    paper.members.add(user)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert '<p id="state-notice" class="neg">account' in page
    assert "feed: it died" in page and "resume" in page
    assert _resume(paper).status_code == 200
    assert '<p id="state-notice" class="neg" hidden></p>' in client.get("/").content.decode()


def test_an_admin_resumes_it_from_the_trading_states_list(paper, client):
    TradingState.objects.filter(account=paper).update(state="reducing", reason="strategy: x")
    admin = UserFactory(username="ada", is_staff=True, is_superuser=True)
    client.force_login(admin)
    row = TradingState.objects.get(account=paper)
    answer = client.post("/admin/risk/tradingstate/", {"action": "resume",
                                                       "_selected_action": [row.pk]})  # fmt: skip
    assert answer.status_code == 302
    assert TradingState.objects.get(account=paper).state == "active"
    entry = AuditLog.objects.filter(action="trading_state.set").first()
    assert entry.actor_repr == "ada" and entry.before["state"] == "reducing"
