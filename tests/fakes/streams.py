"""Helpers to consume feeds in tests and benchmarks without ever hanging."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def take(events: AsyncIterator[T], n: int, timeout: float = 2.0) -> list[T]:
    """Return the next ``n`` items of ``events``; raise TimeoutError after ``timeout`` seconds."""
    out: list[T] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(events))
    return out


@contextlib.asynccontextmanager
async def streaming(feed: Any, timeout: float = 2.0) -> AsyncIterator[AsyncIterator[Any]]:
    """Open ``feed.events()`` and always close the feed and its iterator on exit."""
    events = feed.events()
    try:
        yield events
    finally:
        async with asyncio.timeout(timeout):
            await feed.close()
            await events.aclose()


async def until(
    events: AsyncIterator[T], predicate: Callable[[T], bool], timeout: float = 2.0
) -> list[T]:
    """Collect items up to and including the first matching ``predicate``, within ``timeout``."""
    out: list[T] = []
    async with asyncio.timeout(timeout):
        while True:
            item = await anext(events)
            out.append(item)
            if predicate(item):
                return out
