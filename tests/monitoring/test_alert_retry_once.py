"""A failed alert delivery is retried once per try even when the task queue is busy.

``alerts_tick`` runs every minute and re-queues every failed delivery whose back-off is over;
while workers are busy (a sweep's trials, say) the first retry has not run yet, so the next
tick queued it again, and each copy then sent the alert and counted an attempt: the same Slack
message twice or more, and ``MAX_ATTEMPTS`` spent in one go instead of over the back-off.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.alerts import alert_deliver, alert_raise, alerts_tick
from monitoring.models import AlertDelivery, AlertRule

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DJANGO_Q_OPTIONS = {"group", "save"}


@pytest.fixture
def busy_queue(monkeypatch):
    """Keep the tasks handed to django-q2 instead of running them: a queue whose workers are
    all busy. ``run()`` then works them off in order, as the workers would."""
    import django_q.tasks

    tasks: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(
        django_q.tasks, "async_task", lambda func, *a, **kw: tasks.append((func, a, kw))
    )

    def run() -> None:
        while tasks:
            func, args, kwargs = tasks.pop(0)
            assert func == "monitoring.alerts.alert_deliver"
            alert_deliver(*args, **{k: v for k, v in kwargs.items() if k not in DJANGO_Q_OPTIONS})

    return tasks, run


@pytest.mark.django_db(transaction=True)
def test_a_retry_queued_twice_is_sent_once(slack, busy_queue):
    tasks, run = busy_queue
    AlertRule.objects.create(name="s", channel="slack", target="https://x/services/T/B/C")
    slack.fail_next = 1
    alert_raise(kind="halt", severity="critical", message="paper halted", now=T0)
    run()  # the first try: refused by Slack
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert alerts_tick(now=T0 + timedelta(seconds=31))["retried"] == 1
    assert alerts_tick(now=T0 + timedelta(seconds=91))["retried"] == 1  # not run yet: again
    assert len(tasks) == 2
    run()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(slack.slack) == 1


@pytest.mark.django_db(transaction=True)
def test_copies_of_a_failing_retry_count_one_attempt(slack, busy_queue):
    tasks, run = busy_queue
    AlertRule.objects.create(name="s", channel="slack", target="https://x/services/T/B/C")
    slack.fail_next = 3
    alert_raise(kind="halt", severity="critical", message="paper halted", now=T0)
    run()
    for seconds in (31, 91, 151):
        alerts_tick(now=T0 + timedelta(seconds=seconds))
    assert len(tasks) == 3
    run()
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 2)  # one retry, not three
    assert slack.fail_next == 1  # Slack was asked once more, not three times
    assert alerts_tick(now=T0 + timedelta(minutes=3))["retried"] == 1  # the back-off goes on
    run()
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and slack.slack == []
