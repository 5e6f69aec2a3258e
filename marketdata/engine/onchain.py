"""On-chain network metrics per interval, from normalised blocks (pure Python, no Django).

Adapters (``marketdata.adapters.eth_rpc``, ``marketdata.adapters.esplora``) translate a chain's
blocks into ``ChainBlock``s of ``ChainTx``s; ``interval_metrics`` sums one interval's blocks:
transaction count and volume, active addresses, fees, large transfers and flows into and out of
a configured set of exchange addresses. Amounts are in the chain's native unit (ETH, BTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class OnchainError(Exception):
    """A chain source that cannot be used (bad answer, missing block, refused range)."""


@dataclass(frozen=True, slots=True)
class ChainTx:
    """One transaction: who paid whom how much (``inputs``/``outputs`` as (address, amount))."""

    txid: str
    inputs: tuple[tuple[str, float], ...]
    outputs: tuple[tuple[str, float], ...]
    fee: float
    coinbase: bool = False

    @property
    def volume(self) -> float:
        """Amount moved to others: outputs not returning to an input address (change)."""
        senders = {address for address, _ in self.inputs}
        return sum(amount for address, amount in self.outputs if address not in senders)


@dataclass(frozen=True, slots=True)
class ChainBlock:
    """A block's height, time and transactions."""

    height: int
    ts: datetime
    txs: tuple[ChainTx, ...]
    token_transfers: int = 0


@dataclass(slots=True)
class IntervalMetrics:
    """Network activity over [ts, ts + timeframe)."""

    ts: datetime
    tx_count: int = 0
    volume: float = 0.0
    active_addresses: int = 0
    fees: float = 0.0
    large_transfers: int = 0
    large_volume: float = 0.0
    exchange_inflow: float = 0.0
    exchange_outflow: float = 0.0
    token_transfers: int = 0
    first_block: int = -1
    last_block: int = -1
    blocks: int = 0
    _addresses: set[str] = field(default_factory=set, repr=False)


def interval_start(ts: datetime, seconds: int) -> datetime:
    """Return the start of the ``seconds``-long UTC interval holding ``ts``."""
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def interval_metrics(
    ts: datetime,
    blocks: Sequence[ChainBlock],
    *,
    exchanges: Iterable[str] = (),
    large_threshold: float = float("inf"),
) -> IntervalMetrics:
    """Sum ``blocks`` (all inside the interval starting at ``ts``) into one interval's metrics."""
    listed = {a.lower() for a in exchanges}
    out = IntervalMetrics(ts=ts)
    for block in blocks:
        out.blocks += 1
        out.first_block = (
            block.height if out.first_block < 0 else min(out.first_block, block.height)
        )
        out.last_block = max(out.last_block, block.height)
        out.token_transfers += block.token_transfers
        for tx in block.txs:
            _add_tx(out, tx, listed, large_threshold)
    out.active_addresses = len(out._addresses)
    return out


def _add_tx(out: IntervalMetrics, tx: ChainTx, listed: set[str], large: float) -> None:
    out.tx_count += 1
    out.fees += tx.fee
    senders = {a.lower() for a, _ in tx.inputs}
    receivers = {a.lower() for a, _ in tx.outputs}
    out._addresses |= senders | receivers
    if tx.coinbase:
        return  # new coins, not a transfer between holders
    volume = tx.volume
    out.volume += volume
    if volume >= large:
        out.large_transfers += 1
        out.large_volume += volume
    from_exchange = bool(senders & listed)
    for address, amount in tx.outputs:
        to_exchange = address.lower() in listed
        if to_exchange and not from_exchange:
            out.exchange_inflow += amount
        elif from_exchange and not to_exchange and address.lower() not in senders:
            out.exchange_outflow += amount


def intervals(start: datetime, end: datetime, seconds: int) -> list[datetime]:
    """Return the interval starts covering [start, end)."""
    first = interval_start(start, seconds)
    step = timedelta(seconds=seconds)
    out, ts = [], first
    while ts < end:
        out.append(ts)
        ts += step
    return out
