"""On-chain backfill: per-interval network metrics of a chain, stored as ``OnchainMetric`` rows.

Resumable like bars: an interval is stored only once every block of it has been read (the
chain already has a block stamped at or after the interval's end), in one transaction; a rerun
skips the intervals already stored, so a crash or Ctrl-C loses at most the interval in flight.
Blocks are found by time with a binary search over heights (block times are taken as
non-decreasing, which holds on Ethereum and is within minutes on Bitcoin).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from asgiref.sync import sync_to_async
from django.db import connections, transaction

from marketdata.engine.events import TIMEFRAME_SECONDS
from marketdata.engine.onchain import ChainBlock, IntervalMetrics, interval_metrics, intervals
from marketdata.models_sources import OnchainMetric
from monitoring.metrics import ALT_DATA_EVENTS

logger = logging.getLogger(__name__)

ONCHAIN_SOURCES = ("onchain:eth", "onchain:btc")
# Transfers at or above these native amounts count as large (about $1M at 2024 prices).
DEFAULT_LARGE_THRESHOLD = {"eth": 300.0, "btc": 15.0}


class ChainSource(Protocol):
    """What the backfill needs from a chain client (EthRpcClient, EsploraClient)."""

    chain: str

    async def tip_height(self) -> int: ...
    async def block_time(self, height: int) -> datetime: ...
    async def block(self, height: int) -> ChainBlock: ...
    async def token_transfers(self, first: int, last: int) -> dict: ...
    async def close(self) -> None: ...


@dataclass
class OnchainBackfillResult:
    """What a backfill stored and skipped."""

    stored: int = 0
    skipped: int = 0  # already stored by an earlier run
    pending: int = 0  # not finished on the chain yet (after the tip)
    blocks: int = 0
    stored_ts: list[datetime] = field(default_factory=list)


def onchain_source_open(source: str, url: str, *, tokens: Iterable[str] = ()) -> ChainSource:
    """Return the client for ``onchain:eth`` (JSON-RPC) or ``onchain:btc`` (Esplora REST)."""
    if source == "onchain:eth":
        from marketdata.adapters.eth_rpc import EthRpcClient

        return EthRpcClient(url, tokens=list(tokens))
    if source == "onchain:btc":
        from marketdata.adapters.esplora import EsploraClient

        return EsploraClient(url)
    raise ValueError(f"unknown on-chain source {source!r}; use {', '.join(ONCHAIN_SOURCES)}")


@transaction.atomic
def onchain_metric_store(*, chain: str, timeframe: str, metrics: IntervalMetrics, source: str):
    """Store one finished interval (replacing a row for the same chain, timeframe and start)."""
    OnchainMetric.objects.update_or_create(
        chain=chain,
        timeframe=timeframe,
        ts=metrics.ts,
        defaults={
            "tx_count": metrics.tx_count,
            "volume": metrics.volume,
            "active_addresses": metrics.active_addresses,
            "fees": metrics.fees,
            "large_transfers": metrics.large_transfers,
            "large_volume": metrics.large_volume,
            "exchange_inflow": metrics.exchange_inflow,
            "exchange_outflow": metrics.exchange_outflow,
            "token_transfers": metrics.token_transfers,
            "first_block": metrics.first_block,
            "last_block": metrics.last_block,
            "blocks": metrics.blocks,
            "source": source[:32],
        },
    )


def onchain_stored_starts(*, chain: str, timeframe: str, start: datetime, end: datetime) -> set:
    """Return the interval starts already stored in [start, end)."""
    return set(
        OnchainMetric.objects.filter(
            chain=chain, timeframe=timeframe, ts__gte=start, ts__lt=end
        ).values_list("ts", flat=True)
    )


class _BlockFinder:
    """First height whose block time is >= t, by binary search, with block times cached."""

    def __init__(self, client: ChainSource, tip: int) -> None:
        self.client = client
        self.tip = tip
        self._times: dict[int, datetime] = {}

    async def time(self, height: int) -> datetime:
        if height not in self._times:
            self._times[height] = await self.client.block_time(height)
        return self._times[height]

    async def first_at_or_after(self, moment: datetime, low: int = 0) -> int:
        """Return that height, or ``tip + 1`` when no block is that late yet."""
        high = self.tip + 1
        while low < high:
            mid = (low + high) // 2
            if await self.time(mid) >= moment:
                high = mid
            else:
                low = mid + 1
        return low


async def onchain_backfill(
    client: ChainSource,
    *,
    timeframe: str,
    start: datetime,
    end: datetime,
    exchanges: Iterable[str] = (),
    large_threshold: float | None = None,
    source: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> OnchainBackfillResult:
    """Compute and store every finished interval in [start, end) not stored yet."""
    seconds = TIMEFRAME_SECONDS[timeframe]
    chain = client.chain
    threshold = DEFAULT_LARGE_THRESHOLD[chain] if large_threshold is None else large_threshold
    exchanges = list(exchanges)
    starts = intervals(start, end, seconds)
    done = await sync_to_async(onchain_stored_starts)(
        chain=chain, timeframe=timeframe, start=starts[0] if starts else start, end=end
    )
    finder = _BlockFinder(client, await client.tip_height())
    result = OnchainBackfillResult()
    step = timedelta(seconds=seconds)
    low = 0
    for index, ts in enumerate(starts):
        if ts in done:
            result.skipped += 1
            continue
        first = await finder.first_at_or_after(ts, low)
        after = await finder.first_at_or_after(ts + step, first)
        if after > finder.tip:  # the interval is still open on the chain: never store it
            result.pending = len(starts) - index
            break
        low = after
        blocks = [await client.block(h) for h in range(first, after)]
        if first < after:
            tokens = await client.token_transfers(first, after - 1)
            blocks = [_with_tokens(b, tokens.get(b.height, 0)) for b in blocks]
        metrics = interval_metrics(ts, blocks, exchanges=exchanges, large_threshold=threshold)
        await sync_to_async(onchain_metric_store)(
            chain=chain, timeframe=timeframe, metrics=metrics, source=source or f"onchain:{chain}"
        )
        result.stored += 1
        ALT_DATA_EVENTS.labels(f"onchain:{chain}", "stored").inc()
        result.blocks += len(blocks)
        result.stored_ts.append(ts)
        if progress is not None:
            progress(index + 1, len(starts))
    return result


def _with_tokens(block: ChainBlock, count: int) -> ChainBlock:
    return ChainBlock(block.height, block.ts, block.txs, token_transfers=count)


def onchain_backfill_run(source: str, url: str, **kwargs) -> OnchainBackfillResult:
    """Run ``onchain_backfill`` for a command (its own event loop; the client is closed)."""
    tokens = kwargs.pop("tokens", ())

    async def run() -> OnchainBackfillResult:
        client = onchain_source_open(source, url, tokens=tokens)
        try:
            return await onchain_backfill(client, source=source, **kwargs)
        finally:
            await client.close()
            await sync_to_async(connections.close_all)()  # the thread ends with this loop

    return asyncio.run(run())
