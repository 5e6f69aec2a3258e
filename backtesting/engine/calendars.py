"""Which trading calendar a series of bars follows, and so how many bars make a year.

The metrics annualise with ``periods_per_year`` and compound CAGR over the elapsed calendar
time; both come from the bars' own timestamps (UTC), never from a 24/7 assumption:

* bars on Saturdays, or full days of bars over a span with no Saturday in it (nothing tells a
  weekend closure there): a market open around the clock (crypto), 365 days a year;
* no Saturday bars, but Sunday bars or intraday days of 20 hours or more: FX, five 24-hour days
  a week (260 days a year);
* otherwise equities: 252 sessions a year of the median number of bars a session has (one for
  daily bars).

A year is 365 days of elapsed time (quantstats' convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketdata.engine.events import TIMEFRAME_SECONDS

DAY_SECONDS = 86_400
YEAR_SECONDS = 365 * DAY_SECONDS
_NS = 1_000_000_000
_SATURDAY, _SUNDAY = 5, 6
_FX_DAY_HOURS = 20  # an intraday session this long is a 24-hour market day


@dataclass(frozen=True, slots=True)
class Calendar:
    """A trading calendar: its name and how many bars of the timeframe it has in a year."""

    name: str
    periods_per_year: float


def around_the_clock(timeframe: str) -> Calendar:
    """Return the 24/7 calendar of ``timeframe`` bars (365 days a year)."""
    return Calendar("24/7", YEAR_SECONDS / TIMEFRAME_SECONDS[timeframe])


def infer_calendar(ts_ns: np.ndarray, timeframe: str) -> Calendar:
    """Return the calendar the bar starts ``ts_ns`` (int64 ns, UTC) follow (module docstring)."""
    seconds = TIMEFRAME_SECONDS[timeframe]
    stamps = np.asarray(ts_ns, dtype=np.int64)
    if stamps.size > 1 and not np.all(stamps[1:] > stamps[:-1]):
        stamps = np.unique(stamps)  # several symbols share each stamp; count bar times once
    if stamps.size < 2:
        return around_the_clock(timeframe)
    days, per_day = _days_with_bars(stamps)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    # A span without a Saturday in it cannot show a weekend closure.
    saw_saturday = days[-1] - days[0] >= 6 or weekday[0] + (days[-1] - days[0]) >= _SATURDAY
    if np.any(weekday == _SATURDAY):
        return around_the_clock(timeframe)
    if seconds >= DAY_SECONDS:
        if not saw_saturday:
            return around_the_clock(timeframe)
        if np.any(weekday == _SUNDAY):
            return Calendar("fx (5 days a week)", 260 * DAY_SECONDS / seconds)
        return Calendar("equities (252 days)", 252.0)
    per_day = per_day[weekday != _SUNDAY]
    session = float(np.median(per_day)) if per_day.size else 1.0
    all_day = session * seconds >= _FX_DAY_HOURS * 3600
    if all_day and not saw_saturday:
        return around_the_clock(timeframe)
    if np.any(weekday == _SUNDAY) or all_day:
        return Calendar("fx (5 days a week)", 260 * DAY_SECONDS / seconds)
    return Calendar("equities (252 days)", 252.0 * session)


def _days_with_bars(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the days (since the epoch) that ascending ``stamps`` fall on and each one's count.

    One binary search per day boundary, not a division (and a remainder) of every stamp: a
    million minute bars span 700 days. What the stamps' days and their ``np.unique`` counts are.
    """
    day = DAY_SECONDS * _NS
    span = np.arange(int(stamps[0]) // day, int(stamps[-1]) // day + 1)
    starts = np.searchsorted(stamps, span[1:] * day)  # each later day's first stamp
    counts = np.diff(starts, prepend=0, append=stamps.size)
    held = counts > 0  # days without a bar (weekends, holidays) are not days of the series
    return span[held], counts[held]


def elapsed_years(ts_ns: np.ndarray, timeframe: str) -> float:
    """Return the years from the first bar's start to the last bar's end (365-day years)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if ts.size == 0:
        return float("nan")
    span = (int(ts.max()) - int(ts.min())) / _NS + TIMEFRAME_SECONDS[timeframe]
    return span / YEAR_SECONDS


__all__ = ["Calendar", "around_the_clock", "elapsed_years", "infer_calendar"]
