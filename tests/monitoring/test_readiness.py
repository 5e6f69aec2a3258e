"""``/health/ready`` per component: engines' heartbeats, feeds, the task cluster; JSON and HTML.

The public gets the verdict and each kind of component's status; names (accounts, symbols),
details, ages and the version go to staff and to the metrics token or networks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from marketdata.models import Symbol, TradeTick
from monitoring.models import SystemEvent


def heartbeat(account: str, age: float, status: str = "running") -> None:
    SystemEvent.objects.create(
        ts=timezone.now() - timedelta(seconds=age),
        component="runtrader",
        kind="heartbeat",
        context={"account": account, "status": status, "events": 10},
    )


def by_name(body: dict) -> dict[str, dict]:
    return {c["name"]: c for c in body["components"]}


@pytest.mark.django_db
def test_components_report_status_and_age(client):
    heartbeat("paper", 5)
    heartbeat("stale", 600)
    heartbeat("done", 700, status="stopped")
    symbol = Symbol.objects.create(name="HLT-USD", base="HLT", quote="USD")
    TradeTick.objects.create(
        symbol=symbol, ts=timezone.now() - timedelta(seconds=30), price=1, size=1
    )
    Schedule.objects.create(
        name="watch",
        func="monitoring.watch.watch",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        next_run=timezone.now() - timedelta(minutes=10),
    )
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200  # only optional components are unhealthy
    assert body["status"] == "degraded"
    parts = by_name(body)
    assert parts["database"]["status"] == "ok" and parts["database"]["required"]
    assert parts["channel_layer"]["status"] == "ok"
    assert parts["runtrader:paper"]["status"] == "ok"
    assert parts["runtrader:paper"]["age_seconds"] < 60
    assert parts["runtrader:stale"]["status"] == "stale"
    assert parts["runtrader:done"]["status"] == "stopped"
    assert parts["feed:HLT-USD"]["status"] == "ok"
    assert 25 < parts["feed:HLT-USD"]["age_seconds"] < 120
    assert parts["qcluster"]["status"] == "down" and parts["qcluster"]["age_seconds"] > 500
    assert parts["queue"]["detail"] == "0 tasks waiting"


@pytest.mark.django_db
def test_everything_fresh_is_ok_and_outsiders_see_only_dependencies(client):
    heartbeat("paper", 1)
    Schedule.objects.create(
        name="tick",
        func="monitoring.alerts.alerts_tick",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        next_run=timezone.now() + timedelta(seconds=30),
    )
    assert client.get("/health/ready").json()["status"] == "ok"
    outside = client.get("/health/ready", REMOTE_ADDR="203.0.113.9").json()
    assert {c["name"] for c in outside["components"]} <= {
        "database",
        "redis",
        "channel_layer",
        "runtrader",
        "qcluster",
        "queue",
    }
    assert "paper" not in str(outside)


def _unhealthy_world() -> None:
    """An account, a symbol, a stale engine: names the public must not learn."""
    heartbeat("secret-desk", 5)
    heartbeat("other-desk", 600)
    symbol = Symbol.objects.create(name="ZZQ-USD", base="ZZQ", quote="USD")
    TradeTick.objects.create(symbol=symbol, ts=timezone.now() - timedelta(seconds=30),
                             price=1, size=1)  # fmt: skip


@pytest.mark.django_db
def test_the_public_gets_the_verdict_and_each_kinds_status_only(client, settings):
    _unhealthy_world()
    settings.METRICS_TOKEN = "s3cret-token"
    for headers in (
        {"REMOTE_ADDR": "203.0.113.9"},  # another network
        {"HTTP_X_FORWARDED_FOR": "203.0.113.9"},  # through a proxy on this host
        {"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": "Bearer wrong"},
    ):
        body = client.get("/health/ready", **headers).json()
        assert set(body) == {"status", "time", "components", "checks"}, headers
        assert body["status"] == "degraded"
        kinds = {c["name"]: c["status"] for c in body["components"]}
        assert kinds["runtrader"] == "stale" and kinds["feed"] == "ok"  # the worst of its kind
        assert kinds["database"] == "ok" and body["checks"]["database"] == {"ok": True}
        assert all(set(c) == {"name", "status"} for c in body["components"])
        text = str(body)
        assert "secret-desk" not in text and "ZZQ" not in text and "version" not in text
        liveness = client.get("/health", **headers).json()
        assert set(liveness) == {"status", "time"}
        page = client.get("/health/ready?format=html", **headers).content.decode()
        assert "secret-desk" not in page and "ZZQ" not in page and "Version" not in page


@pytest.mark.django_db
def test_staff_and_the_metrics_token_get_names_details_and_ages(client, settings):
    from tests.factories import UserFactory

    _unhealthy_world()
    settings.METRICS_TOKEN = "s3cret-token"
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    token = client.get("/health/ready", HTTP_AUTHORIZATION="Bearer s3cret-token", **outside)
    parts = by_name(token.json())
    assert parts["runtrader:secret-desk"]["status"] == "ok" and "version" in token.json()
    assert parts["runtrader:other-desk"]["status"] == "stale"
    assert parts["feed:ZZQ-USD"]["age_seconds"] > 25
    client.force_login(UserFactory(username="viewer-only"))  # signed in, not staff: public
    assert "secret-desk" not in str(client.get("/health/ready", **outside).json())
    client.force_login(UserFactory(username="ops", is_staff=True))
    staff = client.get("/health/ready", **outside).json()
    assert "runtrader:secret-desk" in by_name(staff)
    assert "components" in client.get("/health", **outside).json()


@pytest.mark.django_db
def test_people_get_a_readable_page(client):
    heartbeat("paper", 600)
    page = client.get("/health/ready?format=html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    text = page.content.decode()
    assert 'RRR is <span class="degraded">degraded</span>' in text
    assert "runtrader:paper" in text and "stale" in text
    negotiated = client.get("/health/ready", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert negotiated["Content-Type"].startswith("text/html")
