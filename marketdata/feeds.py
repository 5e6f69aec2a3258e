"""Build a live feed by source name: the simulated market or a venue adapter."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from marketdata.adapters.base import FeedStats
from marketdata.constants import LIVE_SOURCES
from marketdata.engine.events import MarketEvent
from marketdata.engine.sim_model import CointegratedPair, FlowImpact
from marketdata.engine.simulator import SimulatedMarket
from marketdata.sim_clock import WallClockBound, sim_start


class SimulatedFeed:
    """The simulated market as a feed: starts at the current second, paced at ``speed``x."""

    venue = "sim"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 42,
        speed: float = 1.0,
        start: datetime | None = None,
        cointegrated: Sequence[CointegratedPair] = (),
        impacts: Sequence[FlowImpact] = (),
    ) -> None:
        start = start or datetime.now(UTC).replace(microsecond=0)
        self.market = SimulatedMarket(
            symbols=list(symbols),
            seed=seed,
            start=start,
            cointegrated=cointegrated,
            impacts=impacts,
        )
        self.speed = speed
        self.stats = FeedStats()
        self.last_received_at: float | None = None
        self._closed = False

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Yield simulated events until closed."""
        async for event in self.market.stream(speed=self.speed):
            if self._closed:
                return
            self.last_received_at = time.monotonic()
            self.stats.received += 1
            self.stats.parsed += 1
            yield event

    async def close(self) -> None:
        """Stop after the current event."""
        self._closed = True


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Where each source connects and with which key (read from settings by the caller)."""

    polygon_url: str
    polygon_api_key: str
    coinbase_url: str
    binance_url: str


def build_feed(
    source: str,
    symbols: Sequence[str],
    config: FeedConfig,
    *,
    url: str | None = None,
    api_key: str | None = None,
    speed: float = 1.0,
    seed: int = 42,
    cointegrated: Sequence[CointegratedPair] = (),
    impacts: Sequence[FlowImpact] = (),
    duration: float | None = None,
):
    """Return a feed for ``source`` over ``symbols``; raise ValueError with a clear message.

    ``cointegrated`` and ``impacts`` plant structure in the simulated market (sim only). A
    sped-up simulation starts in the past (far enough back to reach now after ``duration``
    seconds) and is held to the wall clock, so nothing it produces is stamped in the future.
    """
    if source == "sim":
        start = sim_start(speed, duration, datetime.now(UTC))
        return WallClockBound(
            SimulatedFeed(
                symbols,
                seed=seed,
                speed=speed,
                start=start,
                cointegrated=cointegrated,
                impacts=impacts,
            )
        )
    if cointegrated or impacts:
        raise ValueError("planted structure (--plant-pair, --plant-impact) needs --source sim")
    if source == "polygon":
        from marketdata.adapters.polygon import PolygonCryptoStream

        key = api_key or config.polygon_api_key
        if not key:
            raise ValueError("polygon needs POLYGON_API_KEY (or --api-key)")
        return PolygonCryptoStream(key, symbols, ("XT", "XQ", "XA"), url=url or config.polygon_url)
    if source == "coinbase":
        from marketdata.adapters.coinbase import CoinbaseFeed

        return CoinbaseFeed(symbols, url=url or config.coinbase_url)
    if source == "binance":
        from marketdata.adapters.binance import BinanceFeed

        return BinanceFeed(symbols, url=url or config.binance_url)
    raise ValueError(f"unknown source {source!r}; choose one of {', '.join(LIVE_SOURCES)}")
