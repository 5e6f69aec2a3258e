"""``ingest --source sentiment|onchain:eth|onchain:btc``: collect the alternative sources live.

* ``sentiment``: every ``interval`` seconds, fetch the RSS/Atom feeds' headlines of the last
  ``headline_hours``, score each symbol's with the provider (``lexicon`` VADER, or ``llm`` over
  chat completions) and store the readings.
* ``onchain:*``: every ``interval`` seconds, store the chain's intervals that finished in the
  last ``lookback`` (the resumable backfill, so nothing is stored twice).

A round that fails (feed down, node error) is logged and counted and the next round retries;
``MAX_FAILED_ROUNDS`` failures in a row stop the command with an error, never silently.
TradingView alerts are pushed to the webhook (``/hooks/tradingview/<token>``) by TradingView
itself: there is nothing to ingest for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp

from marketdata.adapters.base import FeedAuthError, FeedError
from marketdata.constants import ALT_INGEST_SOURCES  # noqa: F401 - re-exported
from marketdata.engine.onchain import OnchainError

logger = logging.getLogger(__name__)

MAX_FAILED_ROUNDS = 5


class SourceFailing(RuntimeError):
    """A source failed ``MAX_FAILED_ROUNDS`` rounds in a row."""


async def run_rounds(
    round_fn: Callable[[datetime], object],
    *,
    interval: float,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    errors: tuple[type[BaseException], ...] = (FeedError, OnchainError, aiohttp.ClientError),
) -> Counter:
    """Run ``round_fn(now)`` every ``interval`` seconds until ``stop``; return the counts."""
    counts: Counter = Counter()
    failed = 0
    while not stop.is_set():
        try:
            counts.update(await round_fn(clock()))
            counts["rounds"] += 1
            failed = 0
        except FeedAuthError:
            raise  # a refused key never recovers by retrying
        except errors as exc:
            failed += 1
            counts["failed_rounds"] += 1
            logger.warning("alternative source round failed", extra={"error": str(exc)})
            if failed >= MAX_FAILED_ROUNDS:
                raise SourceFailing(f"{failed} rounds failed in a row; last: {exc}") from exc
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
    return counts


def sentiment_round_fn(
    provider,
    *,
    urls: list[str],
    symbols: list[str],
    session: aiohttp.ClientSession,
    headline_hours: float = 24.0,
):
    """Return the round function of ``ingest --source sentiment``."""
    from marketdata.adapters.news_rss import fetch_headlines
    from marketdata.sentiment import sentiment_round

    async def one_round(now: datetime) -> dict:
        headlines = await fetch_headlines(session, urls, symbols)
        recent = [h for h in headlines if h.ts >= now - timedelta(hours=headline_hours)]
        stats = await sentiment_round(provider=provider, headlines=recent, symbols=symbols, now=now)
        return {
            "headlines": len(recent),
            "stored": stats.stored,
            "quarantined": stats.quarantined,
            "no_headlines": stats.no_headlines,
        }

    return one_round


def onchain_round_fn(client, *, timeframe: str, lookback: timedelta, exchanges, threshold):
    """Return the round function of ``ingest --source onchain:*``."""
    from marketdata.onchain import onchain_backfill

    async def one_round(now: datetime) -> dict:
        result = await onchain_backfill(
            client,
            timeframe=timeframe,
            start=now - lookback,
            end=now,
            exchanges=exchanges,
            large_threshold=threshold,
            source=f"onchain:{client.chain}",
        )
        return {"stored": result.stored, "blocks": result.blocks}

    return one_round
