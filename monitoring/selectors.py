"""Reads for monitoring: health of dependencies, recent events and audit history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from monitoring.engine.health import CheckResult, component_checks, run_checks


def _database_check() -> str:
    """Run a trivial query on the default database."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connections["default"].vendor


def _redis_check() -> str:
    """Ping Redis with a short timeout."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return "pong"


def readiness_checks() -> list[CheckResult]:
    """Check the database, Redis when configured, and components running in this process."""
    checks = {"database": _database_check}
    if settings.REDIS_URL:
        checks["redis"] = _redis_check
    checks.update(component_checks())
    return run_checks(checks)


def component_results() -> list[CheckResult]:
    """Check only the components running in this process (engines): no I/O."""
    return run_checks(component_checks())


# --- Readiness per component (``/health/ready``) -------------------------------------------
HEARTBEAT_STALE_SECONDS = 90.0  # three default heartbeat intervals
FEED_STALE_SECONDS = 120.0
QCLUSTER_STALE_SECONDS = 180.0  # the every-minute schedules are overdue by this much


@dataclass(frozen=True, slots=True)
class Component:
    """One component's state: ``ok``, ``stale``, ``stopped``, ``down`` or ``unknown``."""

    name: str
    status: str
    detail: str
    age_seconds: float | None = None
    required: bool = False  # a required component that is not ok makes the process unready

    def as_dict(self) -> dict:
        """Return a JSON-able dict."""
        age = None if self.age_seconds is None else round(self.age_seconds, 1)
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "age_seconds": age, "required": self.required}  # fmt: skip


def _channel_layer_check() -> str:
    """Send a message to a fresh channel and read it back within a second."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> str:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(channel), 1.0)
        return f"{type(layer).__name__}: {message['type']}"

    return async_to_sync(roundtrip)()


def _engines(now: datetime) -> list[Component]:
    """The last heartbeat of every ``runtrader`` seen in the last day."""
    from monitoring.models import SystemEvent

    latest: dict[str, SystemEvent] = {}
    rows = SystemEvent.objects.filter(
        component="runtrader", kind="heartbeat", ts__gte=now - timedelta(days=1)
    ).order_by("-ts")[:2000]
    for row in rows:
        latest.setdefault(str(row.context.get("account", "")), row)
    components = []
    for account, beat in sorted(latest.items()):
        age = (now - beat.ts).total_seconds()
        said = beat.context.get("status", "")
        if said == "stopped":
            status = "stopped"
        elif age > HEARTBEAT_STALE_SECONDS:
            status = "stale"
        else:
            status = "ok" if said == "running" else "degraded"
        detail = f"runtrader {said}, {beat.context.get('events', 0)} events, last heartbeat"
        components.append(Component(f"runtrader:{account}", status, detail, age))
    return components


def _feeds(now: datetime) -> list[Component]:
    """The newest stored trade of each active symbol (what the feeds last delivered)."""
    from marketdata.models import Symbol, TradeTick

    components = []
    for symbol in Symbol.objects.filter(active=True).order_by("name"):
        last = (
            TradeTick.objects.filter(symbol=symbol, ts__lte=now + timedelta(minutes=5))
            .order_by("-ts")
            .values_list("ts", flat=True)
            .first()
        )
        if last is None:
            continue  # never fed: nothing to judge
        age = max((now - last).total_seconds(), 0.0)
        status = "ok" if age <= FEED_STALE_SECONDS else "stale"
        components.append(Component(f"feed:{symbol.name}", status, "last trade stored", age))
    return components


def _alt_sources(now: datetime) -> list[Component]:
    """TradingView alerts, sentiment readings and on-chain intervals: the newest of each."""
    from marketdata.source_health import alt_source_states

    return [Component(*state) for state in alt_source_states(now)]


def _qcluster(now: datetime) -> list[Component]:
    """Whether a django-q2 cluster runs (its schedules are picked up) and the queue depth."""
    from django_q.models import Schedule

    from monitoring.performance import jobs_queue_depth_refresh

    depth = jobs_queue_depth_refresh()
    due = (
        Schedule.objects.exclude(repeats=0)
        .order_by("next_run")
        .values_list("next_run", flat=True)
        .first()
    )
    queue = Component(
        "queue",
        "ok" if depth is not None else "unknown",
        f"{depth} tasks waiting" if depth is not None else "broker unreadable",
    )
    if due is None:
        return [Component("qcluster", "unknown", "no schedule to watch (run bootstrap)"), queue]
    overdue = (now - due).total_seconds()
    if overdue > QCLUSTER_STALE_SECONDS:
        cluster = Component(
            "qcluster", "down", "schedules overdue: no qcluster is running", overdue
        )
    else:
        cluster = Component("qcluster", "ok", "schedules picked up on time", max(overdue, 0.0))
    return [cluster, queue]


def readiness_components(*, now: datetime | None = None) -> list[Component]:
    """Check every component: dependencies (required), engines, feeds, the task cluster."""
    now = now or timezone.now()
    core = readiness_checks()
    components = [
        Component(r.name, "ok" if r.ok else "down", r.detail, None, required=True) for r in core
    ]
    layer = run_checks({"channel_layer": _channel_layer_check})[0]
    components.append(
        Component("channel_layer", "ok" if layer.ok else "down", layer.detail, None, True)
    )
    if not all(c.status == "ok" for c in components if c.name == "database"):
        return components  # the rest reads the database
    for probe in (_engines, _feeds, _alt_sources, _qcluster):
        try:
            components += probe(now)
        except Exception as exc:  # one probe failing must not hide the others
            components.append(Component(probe.__name__.strip("_"), "down", f"{exc}"))
    return components


def readiness_status(components: list[Component]) -> str:
    """``unavailable`` if a required component is down, ``degraded`` if any other is not ok."""
    if any(c.required and c.status != "ok" for c in components):
        return "unavailable"
    if any(c.status in ("down", "stale", "degraded") for c in components):
        return "degraded"
    return "ok"
