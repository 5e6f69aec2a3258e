"""django-q2 schedules that RRR keeps: each created once, by name, and left as an admin edits it."""

from __future__ import annotations


def schedule_ensure(name: str, func: str, *, every_minute: bool = False) -> bool:
    """Create the repeating schedule ``name`` of ``func`` (daily or every minute); True if new.

    An existing schedule of that name is left as it is, so an admin's change to it survives.
    """
    from django_q.models import Schedule

    defaults = {"func": func, "repeats": -1, "schedule_type": Schedule.DAILY}
    if every_minute:
        defaults |= {"schedule_type": Schedule.MINUTES, "minutes": 1}
    _, created = Schedule.objects.get_or_create(name=name, defaults=defaults)
    return created
