"""Bitcoin blocks from an Esplora REST API (Blockstream's and mempool.space's, or self-hosted).

``GET /blocks/tip/height``, ``GET /block-height/{h}`` (hash), ``GET /block/{hash}`` (header with
``timestamp``) and ``GET /block/{hash}/txs/{start}`` (25 transactions a page, with ``vin``
prevouts, ``vout`` and ``fee`` in satoshis).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp

from marketdata.adapters.base import FeedProtocolError
from marketdata.engine.onchain import ChainBlock, ChainTx, OnchainError

SATS = 100_000_000
PAGE = 25
RETRYABLE = {429, 502, 503, 504}


class EsploraClient:
    """Async Esplora client for one base URL (e.g. ``https://blockstream.info/api``)."""

    chain = "btc"

    def __init__(
        self, url: str, *, timeout: float = 30.0, max_attempts: int = 4, sleep=asyncio.sleep
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = max_attempts
        self._sleep = sleep
        self.requests = 0
        self._session: aiohttp.ClientSession | None = None
        self._hashes: dict[int, str] = {}

    async def _get(self, path: str, *, text: bool = False) -> Any:
        self._session = self._session or aiohttp.ClientSession(timeout=self._timeout)
        for attempt in range(self._attempts):
            self.requests += 1
            async with self._session.get(self.url + path) as response:
                if response.status in RETRYABLE and attempt + 1 < self._attempts:
                    await self._sleep(min(2.0**attempt, 30.0))
                    continue
                if response.status == 404:
                    raise OnchainError(f"{path}: not found")
                if response.status != 200:
                    raise FeedProtocolError(
                        path, status=response.status, body=await response.text()
                    )
                return await (response.text() if text else response.json(content_type=None))
        raise OnchainError(f"{path}: retries used up")

    async def tip_height(self) -> int:
        """Return the height of the chain tip."""
        return _int(await self._get("/blocks/tip/height", text=True), "tip height")

    async def _hash(self, height: int) -> str:
        if height not in self._hashes:
            self._hashes[height] = (await self._get(f"/block-height/{height}", text=True)).strip()
        return self._hashes[height]

    async def block_time(self, height: int) -> datetime:
        """Return a block's header timestamp."""
        header = await self._get(f"/block/{await self._hash(height)}")
        return datetime.fromtimestamp(_int(header.get("timestamp"), "timestamp"), tz=UTC)

    async def block(self, height: int) -> ChainBlock:
        """Return a block with all its transactions (paged 25 at a time)."""
        block_hash = await self._hash(height)
        header = await self._get(f"/block/{block_hash}")
        count = _int(header.get("tx_count"), "tx_count")
        txs = []
        for start in range(0, count, PAGE):
            page = await self._get(f"/block/{block_hash}/txs/{start}")
            txs += [_tx(raw) for raw in page]
        if len(txs) != count:
            raise OnchainError(f"block {height}: {len(txs)} transactions of {count}")
        ts = datetime.fromtimestamp(_int(header.get("timestamp"), "timestamp"), tz=UTC)
        return ChainBlock(height=height, ts=ts, txs=tuple(txs))

    async def token_transfers(self, first: int, last: int) -> dict:
        """Bitcoin has no token logs."""
        return {}

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _tx(raw: dict) -> ChainTx:
    coinbase = any(v.get("is_coinbase") for v in raw.get("vin", []))
    inputs = tuple(
        (v["prevout"].get("scriptpubkey_address", "?"), v["prevout"]["value"] / SATS)
        for v in raw.get("vin", [])
        if not v.get("is_coinbase") and v.get("prevout")
    )
    outputs = tuple(
        (o.get("scriptpubkey_address", "nonstandard"), o["value"] / SATS)
        for o in raw.get("vout", [])
    )
    return ChainTx(
        txid=raw["txid"],
        inputs=inputs,
        outputs=outputs,
        fee=_int(raw.get("fee", 0), "fee") / SATS,
        coinbase=coinbase,
    )


def _int(value: Any, name: str) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise OnchainError(f"{name}: expected an integer, got {value!r}") from None
    if number < 0:
        raise OnchainError(f"{name}: negative {number}")
    return number
