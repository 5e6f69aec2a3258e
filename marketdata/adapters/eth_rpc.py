"""Ethereum JSON-RPC client (any node: geth, erigon, nethermind, or a provider's HTTPS URL).

Speaks JSON-RPC 2.0 over HTTP POST: ``eth_blockNumber``, ``eth_getBlockByNumber`` (with full
transactions), ``eth_getBlockReceipts`` (gas actually used, for exact fees) and ``eth_getLogs``
(ERC-20 ``Transfer`` events of configured token contracts). Quantities are hex strings; wei are
converted to ETH floats (observations, not money).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from marketdata.adapters.base import FeedProtocolError
from marketdata.engine.onchain import ChainBlock, ChainTx, OnchainError

WEI = 10**18
# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
RETRYABLE = {429, 502, 503, 504}


class EthRpcClient:
    """Async JSON-RPC client for one node URL."""

    chain = "eth"

    def __init__(
        self,
        url: str,
        *,
        tokens: Sequence[str] = (),
        timeout: float = 30.0,
        max_attempts: int = 4,
        sleep=asyncio.sleep,
    ) -> None:
        self.url = url
        self.tokens = [t.lower() for t in tokens]
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = max_attempts
        self._sleep = sleep
        self._ids = 0
        self.requests = 0
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, params: list) -> Any:
        """Call ``method``; raise OnchainError on a JSON-RPC error, retry HTTP 429/5xx."""
        self._session = self._session or aiohttp.ClientSession(timeout=self._timeout)
        self._ids += 1
        payload = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        for attempt in range(self._attempts):
            self.requests += 1
            async with self._session.post(self.url, json=payload) as response:
                if response.status in RETRYABLE and attempt + 1 < self._attempts:
                    await self._sleep(min(2.0**attempt, 30.0))
                    continue
                if response.status != 200:
                    raise FeedProtocolError(
                        f"{method}", status=response.status, body=await response.text()
                    )
                body = await response.json(content_type=None)
            if not isinstance(body, dict) or body.get("id") != payload["id"]:
                raise OnchainError(f"{method}: answer is not the JSON-RPC response to our call")
            if body.get("error"):
                error = body["error"]
                raise OnchainError(f"{method}: {error.get('code')} {error.get('message')}")
            return body.get("result")
        raise OnchainError(f"{method}: retries used up")

    async def tip_height(self) -> int:
        """Return the latest block number."""
        return _quantity(await self.call("eth_blockNumber", []), "eth_blockNumber")

    async def block_time(self, height: int) -> datetime:
        """Return a block's timestamp."""
        block = await self.call("eth_getBlockByNumber", [hex(height), False])
        if not block:
            raise OnchainError(f"block {height} not found")
        return _time(block)

    async def block(self, height: int) -> ChainBlock:
        """Return a block with its transactions, fees from receipts and token transfers."""
        raw = await self.call("eth_getBlockByNumber", [hex(height), True])
        if not raw:
            raise OnchainError(f"block {height} not found")
        receipts = await self.call("eth_getBlockReceipts", [hex(height)]) or []
        fees = {
            r["transactionHash"]: _quantity(r["gasUsed"], "gasUsed")
            * _quantity(r["effectiveGasPrice"], "effectiveGasPrice")
            for r in receipts
        }
        txs = []
        for tx in raw.get("transactions", []):
            if tx["hash"] not in fees:
                raise OnchainError(f"block {height}: no receipt for {tx['hash']}")
            value = _quantity(tx["value"], "value") / WEI
            receiver = tx.get("to") or tx.get("creates") or "contract-creation"
            txs.append(
                ChainTx(
                    txid=tx["hash"],
                    inputs=((tx["from"], value),),
                    outputs=((receiver, value),),
                    fee=fees[tx["hash"]] / WEI,
                )
            )
        return ChainBlock(height=height, ts=_time(raw), txs=tuple(txs))

    async def token_transfers(self, first: int, last: int) -> Counter:
        """Count ERC-20 Transfer logs of the configured tokens per block in [first, last]."""
        if not self.tokens:
            return Counter()
        logs = await self.call(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(first),
                    "toBlock": hex(last),
                    "address": self.tokens,
                    "topics": [TRANSFER_TOPIC],
                }
            ],
        )
        return Counter(_quantity(log["blockNumber"], "blockNumber") for log in logs or [])

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _quantity(value: Any, name: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise OnchainError(f"{name}: expected a hex quantity, got {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise OnchainError(f"{name}: expected a hex quantity, got {value!r}") from None


def _time(block: dict) -> datetime:
    return datetime.fromtimestamp(_quantity(block.get("timestamp"), "timestamp"), tz=UTC)
