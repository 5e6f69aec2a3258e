"""On-chain metrics from local Ethereum JSON-RPC and Esplora servers; resumable backfills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from marketdata.adapters.base import FeedProtocolError
from marketdata.adapters.esplora import EsploraClient
from marketdata.adapters.eth_rpc import EthRpcClient
from marketdata.models import OnchainMetric
from marketdata.onchain import onchain_backfill
from tests.fakes.chains import EXCHANGE, TOKEN, FakeEsplora, FakeEthNode

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FIELDS = [
    "ts",
    "tx_count",
    "volume",
    "active_addresses",
    "fees",
    "large_transfers",
    "exchange_inflow",
    "exchange_outflow",
    "token_transfers",
    "first_block",
    "last_block",
]


def stored(chain: str) -> list[dict]:
    return list(OnchainMetric.objects.filter(chain=chain).order_by("ts").values(*FIELDS))


def expected_eth(node: FakeEthNode, k: int) -> dict:
    """Interval k of 5 minutes = blocks 25k .. 25k+24 (12 s blocks from T0)."""
    heights = range(25 * k, 25 * k + 25)
    txs = [tx for h in heights for tx in node.raw(h)]
    moved = [tx for tx in txs if tx.receiver != tx.sender]
    return {
        "ts": T0 + timedelta(minutes=5 * k),
        "tx_count": len(txs),
        "volume": pytest.approx(sum(tx.value for tx in moved) / 1e18),
        "active_addresses": len({a for tx in txs for a in (tx.sender, tx.receiver)}),
        "fees": pytest.approx(len(txs) * 21_000 * 20e9 / 1e18),
        "large_transfers": sum(tx.value >= 300 * 10**18 for tx in moved),
        "exchange_inflow": pytest.approx(
            sum(t.value for t in moved if t.receiver == EXCHANGE) / 1e18
        ),
        "exchange_outflow": pytest.approx(
            sum(t.value for t in moved if t.sender == EXCHANGE) / 1e18
        ),
        "token_transfers": sum(node.token_logs(h) for h in heights),
        "first_block": heights[0],
        "last_block": heights[-1],
    }


async def test_eth_intervals_match_the_chain_and_open_ones_wait() -> None:
    async with FakeEthNode(T0, tip=160) as node:  # tip at T0 + 32 min
        client = EthRpcClient(node.url, tokens=[TOKEN])
        result = await onchain_backfill(
            client,
            timeframe="5m",
            start=T0,
            end=T0 + timedelta(minutes=40),
            exchanges=[EXCHANGE.upper().replace("0X", "0x")],
        )
        await client.close()
    assert (result.stored, result.pending, result.blocks) == (6, 2, 150)
    rows = await sync_to_async(stored)("eth")
    assert rows == [expected_eth(node, k) for k in range(6)]
    assert any(r["large_transfers"] for r in rows) and any(r["exchange_inflow"] for r in rows)


async def test_eth_backfill_resumes_after_a_failure_without_duplicates() -> None:
    async with FakeEthNode(T0, tip=160) as node:
        client = EthRpcClient(node.url, tokens=[TOKEN], max_attempts=1)
        node.fail_after = 150  # dies part-way through
        with pytest.raises(FeedProtocolError):
            await onchain_backfill(
                client,
                timeframe="5m",
                start=T0,
                end=T0 + timedelta(minutes=30),
                exchanges=[EXCHANGE],
            )
        partial = await sync_to_async(stored)("eth")
        assert 0 < len(partial) < 6
        node.fail_after = None
        node.calls.clear()
        again = await onchain_backfill(
            client, timeframe="5m", start=T0, end=T0 + timedelta(minutes=30), exchanges=[EXCHANGE]
        )
        await client.close()
    assert again.skipped == len(partial) and again.stored == 6 - len(partial)
    assert await sync_to_async(stored)("eth") == [expected_eth(node, k) for k in range(6)]
    # Only the missing intervals' blocks were read again.
    assert node.calls.count("eth_getBlockReceipts") == 25 * again.stored


async def test_btc_intervals_from_esplora() -> None:
    async with FakeEsplora(T0, tip=20) as server:  # 10-minute blocks; tip at T0 + 200 min
        client = EsploraClient(server.url)
        result = await onchain_backfill(
            client,
            timeframe="1h",
            start=T0,
            end=T0 + timedelta(hours=5),
            exchanges=["bc1qexchange"],
        )
        await client.close()
    assert (result.stored, result.pending) == (3, 2)
    rows = await sync_to_async(stored)("btc")
    for k, row in enumerate(rows):
        heights = range(6 * k, 6 * k + 6)
        txs = [tx for h in heights for tx in server.raw(h)]
        moved = [tx for tx in txs if not tx.coinbase and tx.receiver != tx.sender]
        assert row["ts"] == T0 + timedelta(hours=k)
        assert row["tx_count"] == len(txs)
        assert row["volume"] == pytest.approx(sum(t.value for t in moved) / 1e8)
        assert row["fees"] == pytest.approx(sum(t.fee for t in txs) / 1e8)
        assert row["large_transfers"] == sum(t.value >= 15 * 10**8 for t in moved)
        assert row["exchange_inflow"] == pytest.approx(
            sum(t.value for t in moved if t.receiver == "bc1qexchange") / 1e8
        )
        assert row["exchange_outflow"] == pytest.approx(
            sum(t.value for t in moved if t.sender == "bc1qexchange") / 1e8
        )
        addresses = {a for t in txs for a in (t.sender, t.receiver) if a}
        assert row["active_addresses"] == len(addresses)
        assert (row["first_block"], row["last_block"]) == (heights[0], heights[-1])
