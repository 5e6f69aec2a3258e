"""What the trade tally's tests share: fills seeded at random, the reference figures of a rebuild
from every fill, a bit-for-bit comparison, and "another web process" (its own memory)."""

from __future__ import annotations

import contextlib
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from backtesting.engine.metrics import summarize
from tests.factories import OrderFactory, SymbolFactory
from trading import trade_tally
from trading.models import Fill
from trading.portfolio_selectors import round_trips_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ("BTC-USD", "ETH-USD", "SOL-USD")


@contextlib.contextmanager
def process(memory: dict):
    """Run the tally as another web process would: with its own memory (``memory``)."""
    saved = trade_tally._TALLIES
    trade_tally._TALLIES = memory
    try:
        yield
    finally:
        trade_tally._TALLIES = saved


class Seeder:
    """Fills with random sides, sizes (partial closes, flips) and fees; several fills share a
    time, across symbols and within one."""

    def __init__(self, account, seed: int) -> None:
        self.account, self.rng, self.n = account, random.Random(seed), 0
        self.symbols = [SymbolFactory(name=name) for name in NAMES]
        self.order = OrderFactory(account=account, symbol=self.symbols[0], status="filled")
        self.position = dict.fromkeys(NAMES, Decimal(0))

    def add(self, count: int, *, minute: int | None = None) -> None:
        rng, fills = self.rng, []
        for _ in range(count):
            at = minute if minute is not None else 10_000 + self.n // 4
            symbol = rng.choice(self.symbols)
            held = self.position[symbol.name]
            if held and rng.random() < 0.25:  # back to flat
                side, qty = ("sell" if held > 0 else "buy"), abs(held)
            else:
                side = rng.choice(["buy", "sell"])
                qty = Decimal(rng.choice(["0.5", "1", "1", "1.5", "2", "3"]))
            self.position[symbol.name] += qty if side == "buy" else -qty
            fills.append(Fill(
                order=self.order, account=self.account, symbol=symbol, side=side, quantity=qty,
                price=Decimal(100 + rng.randint(-20, 20)) + Decimal(rng.randint(0, 99)) / 100,
                fee=Decimal(rng.randint(0, 300)) / 1000, venue_trade_id=f"t{self.n}",
                ts=T0 + timedelta(minutes=at),
            ))  # fmt: skip
            self.n += 1
        Fill.objects.bulk_create(fills)


def reference(account) -> dict:
    """The trade figures of a rebuild of every round trip, as ``performance_of`` computes them."""
    closed = [t for t in round_trips_of(account=account) if not t.is_open]
    figures = summarize([1.0], initial=1.0, periods_per_year=1.0,
                        trade_pnls=[float(t.pnl) for t in closed],
                        trade_returns=[t.return_pct for t in closed])  # fmt: skip
    return {k: figures[k] for k in trade_tally.TRADE_KEYS}


def identical(got: dict | None, want: dict) -> bool:
    """Bit for bit (NaN equal to NaN)."""
    assert got is not None
    same = lambda a, b: a == b or (math.isnan(a) and math.isnan(b))  # noqa: E731
    return all(same(got[k], want[k]) for k in want)
