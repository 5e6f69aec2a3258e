"""Migration 0004 folds duplicate unresolved alerts (opened by racing raisers before the unique
constraint) into the newest, losing no count, before it adds the constraint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BEFORE = [("monitoring", "0003_alert_channel_push")]


@pytest.mark.django_db(transaction=True)
def test_duplicates_are_folded_into_the_newest_alert():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("monitoring")
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        rule = old.get_model("monitoring", "AlertRule").objects.create(name="r", channel="log")
        Alert = old.get_model("monitoring", "Alert")
        common = {"rule": rule, "fingerprint": "f", "source": "s", "kind": "k",
                  "severity": "error", "message": "m"}  # fmt: skip
        first = Alert.objects.create(**common, occurrences=3, deduplicated=2, first_seen=T0,
                                     last_seen=T0 + timedelta(seconds=1))  # fmt: skip
        newest = Alert.objects.create(**common, occurrences=5, deduplicated=4,
                                      first_seen=T0 + timedelta(seconds=1),
                                      last_seen=T0 + timedelta(seconds=9))  # fmt: skip
        other = Alert.objects.create(**{**common, "fingerprint": "g"}, first_seen=T0, last_seen=T0)
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    finally:
        MigrationExecutor(connection).migrate(latest)
    from monitoring.models import Alert as Current

    kept = Current.objects.get(pk=newest.pk)
    assert (kept.state, kept.occurrences, kept.deduplicated) == ("open", 8, 6)
    assert kept.first_seen == T0
    folded = Current.objects.get(pk=first.pk)
    assert folded.state == "resolved" and str(newest.pk) in folded.resolved_by
    assert Current.objects.get(pk=other.pk).state == "open"
