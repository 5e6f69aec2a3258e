"""Local chain servers: Ethereum JSON-RPC 2.0 and Esplora REST, over a synthetic chain.

Payloads have the shape real nodes send (hex quantities, full transaction objects, receipts,
logs; Esplora blocks and paged transactions with prevouts). ``raw`` holds the generating data
so tests can compute the expected metrics independently of the code under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from tests.fakes._http import FakeHttpServer

EXCHANGE = "0x00000000000000000000000000000000000e0c01"
TOKEN = "0xdac17f958d2ee523a2206206994597c13d831ec7"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
GWEI = 10**9


@dataclass(frozen=True)
class RawTx:
    sender: str
    receiver: str
    value: int  # wei or satoshi
    fee: int
    change: int = 0  # btc: amount back to the sender
    coinbase: bool = False


def _address(rng: random.Random, n: int = 12) -> str:
    return EXCHANGE if rng.random() < 0.15 else "0x" + f"{rng.randrange(n):040x}"


class FakeEthNode(FakeHttpServer):
    """``POST /``: eth_blockNumber, eth_getBlockByNumber, eth_getBlockReceipts, eth_getLogs."""

    def __init__(self, genesis: datetime, tip: int, block_seconds: int = 12) -> None:
        super().__init__()
        self.genesis = int(genesis.timestamp())
        self.tip = tip
        self.block_seconds = block_seconds
        self.fail_after: int | None = None  # answer HTTP 500 once this many calls were served
        self.calls: list[str] = []
        self.app.router.add_post("/", self._rpc)

    def timestamp(self, height: int) -> int:
        return self.genesis + height * self.block_seconds

    def raw(self, height: int) -> list[RawTx]:
        rng = random.Random(height)
        txs = []
        for _ in range(rng.randint(0, 4)):
            value = rng.choice([0, 10**17, 3 * 10**18, 500 * 10**18])
            txs.append(RawTx(_address(rng), _address(rng), value, 21_000 * 20 * GWEI))
        return txs

    def token_logs(self, height: int) -> int:
        return random.Random(-height).randint(0, 3)

    async def _rpc(self, request: web.Request) -> web.Response:
        call = await request.json()
        self.calls.append(call["method"])
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            return web.Response(status=500, text="node restarting")
        result = self._answer(call["method"], call["params"])
        if isinstance(result, Exception):
            body = {
                "jsonrpc": "2.0",
                "id": call["id"],
                "error": {"code": -32601, "message": str(result)},
            }
        else:
            body = {"jsonrpc": "2.0", "id": call["id"], "result": result}
        return web.json_response(body)

    def _answer(self, method: str, params: list):
        if method == "eth_blockNumber":
            return hex(self.tip)
        if method == "eth_getBlockByNumber":
            height = int(params[0], 16)
            return None if height > self.tip else self._block(height, params[1])
        if method == "eth_getBlockReceipts":
            height = int(params[0], 16)
            return [self._receipt(height, i, tx) for i, tx in enumerate(self.raw(height))]
        if method == "eth_getLogs":
            spec = params[0]
            assert spec["topics"] == [TRANSFER_TOPIC] and spec["address"] == [TOKEN]
            first, last = int(spec["fromBlock"], 16), int(spec["toBlock"], 16)
            return [
                self._log(h, i) for h in range(first, last + 1) for i in range(self.token_logs(h))
            ]
        return ValueError(f"the method {method} does not exist/is not available")

    def _block(self, height: int, full: bool) -> dict:
        txs = [self._tx(height, i, tx) for i, tx in enumerate(self.raw(height))]
        return {
            "number": hex(height),
            "hash": f"0x{height:064x}",
            "parentHash": f"0x{max(height - 1, 0):064x}",
            "miner": "0x95222290dd7278aa3ddd389cc1e1d165cc4bafe5",
            "timestamp": hex(self.timestamp(height)),
            "gasLimit": hex(30_000_000),
            "gasUsed": hex(21_000 * len(txs)),
            "baseFeePerGas": hex(18 * GWEI),
            "transactions": txs if full else [t["hash"] for t in txs],
        }

    def _tx(self, height: int, index: int, tx: RawTx) -> dict:
        return {
            "hash": f"0x{height:032x}{index:032x}",
            "blockNumber": hex(height),
            "blockHash": f"0x{height:064x}",
            "transactionIndex": hex(index),
            "from": tx.sender,
            "to": tx.receiver,
            "value": hex(tx.value),
            "gas": hex(21_000),
            "gasPrice": hex(20 * GWEI),
            "maxFeePerGas": hex(30 * GWEI),
            "maxPriorityFeePerGas": hex(2 * GWEI),
            "input": "0x",
            "nonce": hex(index),
            "type": "0x2",
            "chainId": "0x1",
        }

    def _receipt(self, height: int, index: int, tx: RawTx) -> dict:
        return {
            "transactionHash": f"0x{height:032x}{index:032x}",
            "blockNumber": hex(height),
            "gasUsed": hex(21_000),
            "effectiveGasPrice": hex(20 * GWEI),
            "status": "0x1",
            "logs": [],
        }

    def _log(self, height: int, index: int) -> dict:
        return {
            "address": TOKEN,
            "topics": [TRANSFER_TOPIC, "0x" + "0" * 64, "0x" + "0" * 63 + "1"],
            "data": hex(10**6),
            "blockNumber": hex(height),
            "logIndex": hex(index),
            "transactionHash": f"0x{height:032x}{index:032x}",
        }


class FakeEsplora(FakeHttpServer):
    """Esplora's REST routes over a synthetic Bitcoin chain (one coinbase + transfers a block)."""

    def __init__(self, genesis: datetime, tip: int, block_seconds: int = 600) -> None:
        super().__init__()
        self.genesis = int(genesis.timestamp())
        self.tip = tip
        self.block_seconds = block_seconds
        r = self.app.router
        r.add_get("/blocks/tip/height", self._tip)
        r.add_get("/block-height/{height}", self._hash)
        r.add_get("/block/{hash}", self._header)
        r.add_get("/block/{hash}/txs/{start}", self._txs)

    def timestamp(self, height: int) -> int:
        return self.genesis + height * self.block_seconds

    def raw(self, height: int) -> list[RawTx]:
        rng = random.Random(height)
        txs = [RawTx("", f"bc1qminer{height}", 312_500_000, 0, coinbase=True)]
        for _ in range(rng.randint(20, 40)):  # more than one page of 25
            value = rng.choice([50_000, 2_000_000, 20 * 10**8])
            sender = "bc1qexchange" if rng.random() < 0.15 else f"bc1qs{rng.randrange(15)}"
            receiver = "bc1qexchange" if rng.random() < 0.15 else f"bc1qr{rng.randrange(15)}"
            txs.append(RawTx(sender, receiver, value, rng.randrange(500, 5000), change=10_000))
        return txs

    async def _tip(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self.tip))

    async def _hash(self, request: web.Request) -> web.Response:
        height = int(request.match_info["height"])
        if height > self.tip:
            return web.Response(status=404, text="Block not found")
        return web.Response(text=f"{height:064x}")

    async def _header(self, request: web.Request) -> web.Response:
        height = int(request.match_info["hash"], 16)
        return web.json_response(
            {
                "id": f"{height:064x}",
                "height": height,
                "version": 536870912,
                "timestamp": self.timestamp(height),
                "tx_count": len(self.raw(height)),
                "size": 1_500_000,
                "weight": 3_993_000,
                "merkle_root": "00" * 32,
                "previousblockhash": f"{max(height - 1, 0):064x}",
                "mediantime": self.timestamp(height) - 3000,
                "nonce": 1,
                "bits": 386_000_000,
                "difficulty": 8.6e13,
            }
        )

    async def _txs(self, request: web.Request) -> web.Response:
        height = int(request.match_info["hash"], 16)
        start = int(request.match_info["start"])
        raws = self.raw(height)[start : start + 25]
        return web.json_response([self._tx(height, start + i, tx) for i, tx in enumerate(raws)])

    def _tx(self, height: int, index: int, tx: RawTx) -> dict:
        if tx.coinbase:
            vin = [
                {
                    "txid": "0" * 64,
                    "vout": 4294967295,
                    "prevout": None,
                    "is_coinbase": True,
                    "scriptsig": "03",
                    "sequence": 4294967295,
                }
            ]
        else:
            spent = tx.value + tx.change + tx.fee
            vin = [
                {
                    "txid": f"{index:064x}",
                    "vout": 0,
                    "is_coinbase": False,
                    "sequence": 0,
                    "prevout": {
                        "scriptpubkey_address": tx.sender,
                        "scriptpubkey_type": "v0_p2wpkh",
                        "value": spent,
                    },
                }
            ]
        vout = [
            {
                "scriptpubkey_address": tx.receiver,
                "scriptpubkey_type": "v0_p2wpkh",
                "value": tx.value,
            }
        ]
        if tx.change:
            vout.append(
                {
                    "scriptpubkey_address": tx.sender,
                    "scriptpubkey_type": "v0_p2wpkh",
                    "value": tx.change,
                }
            )
        return {
            "txid": f"{height:032x}{index:032x}",
            "version": 2,
            "locktime": 0,
            "vin": vin,
            "vout": vout,
            "size": 222,
            "weight": 561,
            "fee": tx.fee,
            "status": {
                "confirmed": True,
                "block_height": height,
                "block_time": self.timestamp(height),
            },
        }
