"""Where a simulated ``runtrader`` session sits in time: never ahead of the wall clock.

The simulated market stamps its events with its own clock. At ``--speed 1`` that clock starts
now and keeps pace with the wall clock. A sped-up session instead starts in the past, far enough
back that at its speed it reaches the wall clock when the run ends (``--duration``), or one hour
back when the run has no end or no pace (``--speed 0``). Whatever it does, ``WallClockBound``
holds back any event stamped after the wall clock until that time comes, so a sped-up session
that catches up goes on at real time. Nothing a simulated session stores (bars, orders, fills,
snapshots) is therefore ever stamped in the future, and its ``session_start`` record says it was
simulated, at which speed and from when.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

SIM_BACKLOG = timedelta(hours=1)  # how far back an open-ended sped-up session starts


def sim_start(speed: float, duration: float | None, now: datetime) -> datetime:
    """Return when a simulated session at ``speed`` for ``duration`` wall seconds starts."""
    now = now.replace(microsecond=0)
    if speed <= 1 and speed != 0:
        return now  # real time or slower: the simulated clock never overtakes the wall clock
    if speed > 1 and duration is not None:
        return now - timedelta(seconds=(speed - 1) * duration)
    return now - SIM_BACKLOG


class WallClockBound:
    """Wrap a feed so that no event is passed on before the wall clock reaches its time."""

    def __init__(
        self,
        feed: Any,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.feed = feed
        self.clock = clock
        self.sleep = sleep
        self.held = 0  # events that had to wait for the wall clock

    def __getattr__(self, name: str) -> Any:
        # venue, stats, last_received_at, market: the wrapped feed's own
        return getattr(self.feed, name)

    async def events(self) -> AsyncIterator[Any]:
        """Yield the feed's events, each no earlier than the wall-clock time it is stamped."""
        async for event in self.feed.events():
            ahead = (event.ts - self.clock()).total_seconds()
            if ahead > 0:
                self.held += 1
                await self.sleep(ahead)
            yield event

    async def close(self) -> None:
        """Close the wrapped feed."""
        await self.feed.close()
