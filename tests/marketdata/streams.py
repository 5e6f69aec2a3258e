"""Random trade streams with injected faults, for batch-versus-scalar equivalence tests."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from marketdata.engine.events import Side, Trade
from marketdata.engine.quality import QualityThresholds, QualityValidator

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

# Small windows so streams reach the steady state (and the bulk path) within a few hundred trades.
SMALL = QualityThresholds(
    zscore_window=20,
    zscore_min_samples=10,
    volume_window=8,
    volume_min_samples=4,
    duplicate_memory=25,
    spike_confirmations=3,
)

FAULTS = (
    "malformed",
    "spike",
    "shift",
    "outlier",
    "volume",
    "duplicate",
    "no_id",
    "out_of_order",
    "same_ts",
    "seq_gap",
    "seq_repeat",
    "seq_back",
)

fault_rates = st.fixed_dictionaries(
    {name: st.sampled_from([0.0, 0.0, 0.002, 0.01, 0.05]) for name in FAULTS}
)


def faulty_trades(
    seed: int,
    count: int,
    faults: Mapping[str, float],
    *,
    symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD"),
    venues: tuple[str, ...] = ("sim",),
    sequences: bool = False,
    step_us: tuple[int, ...] = (0, 1, 700, 20_000, 400_000),
) -> list[Trade]:
    """Return ``count`` trades: random walks per symbol with faults at the given rates."""
    stream = _FaultyStream(random.Random(seed), faults, symbols, sequences)
    out: list[Trade] = []
    for n in range(count):
        symbol, venue = stream.rng.choice(symbols), stream.rng.choice(venues)
        stream.tick(step_us)
        price, size = stream.price_and_size(symbol)
        ts = stream.timestamp(out)
        trade_id = stream.trade_id(f"{venue}-{n}")
        number = stream.sequence((venue, symbol)) if sequences else None
        side = Side.BUY if stream.rng.random() < 0.5 else Side.SELL
        out.append(Trade(symbol, ts, price, size, venue, trade_id, side, number))
    return out


class _FaultyStream:
    """State of a generated stream: prices per symbol, the clock, ids and sequence numbers."""

    def __init__(self, rng: random.Random, faults, symbols, sequences: bool) -> None:
        self.rng = rng
        self.faults = faults
        self.prices = {s: 100.0 * (i + 1) for i, s in enumerate(symbols)}
        self.now = T0
        self.ids: list[str] = []
        self.seq: dict[tuple[str, str], int] = {}

    def hit(self, name: str) -> bool:
        return self.rng.random() < self.faults.get(name, 0.0)

    def tick(self, step_us: tuple[int, ...]) -> None:
        self.now += timedelta(microseconds=self.rng.choice(step_us))
        if self.rng.random() < 0.01:  # quiet spells close windows
            self.now += timedelta(seconds=self.rng.choice([1, 59, 61, 300]))

    def price_and_size(self, symbol: str) -> tuple[float, float]:
        rng = self.rng
        self.prices[symbol] *= math.exp(rng.gauss(0.0, 1e-3))
        if self.hit("shift"):  # a real level change: confirmed by the prints that follow
            self.prices[symbol] *= rng.choice([1.6, 0.6])
        price, size = self.prices[symbol], rng.expovariate(1.0) + 0.001
        if self.hit("spike"):
            price *= rng.choice([1.5, 0.5])
        if self.hit("outlier"):
            price *= math.exp(rng.choice([-1, 1]) * 0.05)
        if self.hit("volume"):
            size *= 40.0
        if self.hit("malformed"):
            price, size = rng.choice([(0.0, size), (-1.0, size), (math.nan, size), (price, 0.0)])
        return price, size

    def timestamp(self, earlier: list[Trade]) -> datetime:
        if self.hit("out_of_order"):
            return self.now - timedelta(microseconds=self.rng.randint(1, 3_000_000))
        if self.hit("same_ts") and earlier:
            return earlier[-1].ts
        return self.now

    def trade_id(self, fresh: str) -> str:
        trade_id = fresh
        if self.hit("duplicate") and self.ids:
            trade_id = self.rng.choice(self.ids[-30:])
        if self.hit("no_id"):
            trade_id = ""
        self.ids.append(trade_id)
        return trade_id

    def sequence(self, key: tuple[str, str]) -> int:
        number = self.seq.get(key, 0) + 1
        if self.hit("seq_gap"):
            number += self.rng.randint(1, 3)
        if self.hit("seq_repeat"):
            number -= 1
        if self.hit("seq_back"):
            number -= self.rng.randint(2, 4)
        self.seq[key] = max(self.seq.get(key, 0), number)
        return number


def split(items: list, seed: int, largest: int = 300) -> list[list]:
    """Cut ``items`` into consecutive chunks of random sizes (1..largest)."""
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(items):
        size = rng.randint(1, largest)
        chunks.append(items[i : i + size])
        i += size
    return chunks


def validator_state(validator: QualityValidator) -> tuple[dict, dict]:
    """Return every stream's reference state and the rule counters, comparable with ==."""
    streams = {}
    for key, series in validator._series.items():
        fields = {}
        for name in series.__slots__:
            value = getattr(series, name)
            fields[name] = list(value) if name in ("returns", "sizes", "id_fifo") else value
        streams[key] = fields
    return streams, dict(validator.rule_counts)
