"""Fixtures for the live-venue tests: a fake Binance exchange and a ccxt venue pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from tests.fakes.exchange_binance import API_KEY, API_SECRET, FakeBinanceExchange, binance_market
from trading.adapters.base import RetryPolicy
from trading.adapters.ccxt_live import CcxtLiveVenue

T = TypeVar("T")
# Every await on the network is bounded so a broken fake or client fails fast, never hangs.
STEP_TIMEOUT = 3.0


async def within(awaitable: Awaitable[T], seconds: float = STEP_TIMEOUT) -> T:
    """Await ``awaitable`` for at most ``seconds``."""
    return await asyncio.wait_for(awaitable, seconds)


class RecordingSleep:
    """An injectable sleep that records the requested delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinanceExchange]:
    """A running fake Binance spot exchange with 100,000 USDT and no BTC."""
    server = FakeBinanceExchange()
    await within(server.start())
    yield server
    await within(server.stop())


@pytest.fixture
def sleeps() -> RecordingSleep:
    """The recording sleep handed to the venue."""
    return RecordingSleep()


VenueFactory = Callable[..., CcxtLiveVenue]


@pytest.fixture
async def make_venue(
    fake: FakeBinanceExchange, sleeps: RecordingSleep
) -> AsyncIterator[VenueFactory]:
    """Build ``CcxtLiveVenue``s on the fake (closed at teardown); kwargs override defaults."""
    made: list[CcxtLiveVenue] = []

    def build(**overrides: Any) -> CcxtLiveVenue:
        kwargs: dict[str, Any] = {
            "api_key": API_KEY,
            "secret": API_SECRET,
            "api_urls": fake.ccxt_urls(),
            "markets": [binance_market()],
            "retry": RetryPolicy(max_retries=3, initial=0.5, maximum=4.0, jitter=0.0),
            "sleep": sleeps,
            "timeout_ms": 2_000,
            # No client-side throttling or exit pause: the fake answers instantly.
            "config": {"enableRateLimit": False, "timeout_on_exit": 0},
        }
        kwargs.update(overrides)
        venue = CcxtLiveVenue("binance", **kwargs)
        made.append(venue)
        return venue

    yield build
    for venue in made:
        await within(venue.close())


@pytest.fixture
def venue(make_venue: VenueFactory) -> CcxtLiveVenue:
    """A venue with the default test settings."""
    return make_venue()
