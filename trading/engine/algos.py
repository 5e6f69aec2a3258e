"""Execution algorithms: TWAP and VWAP parents that slice a quantity into child orders.

A parent has ``slices`` scheduled times spread evenly over ``duration`` from ``start``. At slice
``i`` the cumulative target is ``quantity × (w_0 + … + w_i) / Σw`` (rounded down to ``lot``; the
last slice targets everything), where TWAP weights are equal and VWAP weights come from a volume
profile. A child asks for the cumulative target minus what is filled or still working, so a slice
that fills short is caught up later. With ``max_participation`` a child never exceeds that
fraction of the volume observed since the previous child (what it cannot send carries over).

The algorithm is driven from outside: feed volume (``observe_trade``/``observe_bar``), ask
``due(now)`` for child intents to submit through the OMS, and register it as an OMS listener so
``on_fill``/``on_order`` track progress. Slippage is measured against the arrival price, in bps,
positive when execution was worse than arrival.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from marketdata.engine.events import Bar, Trade
from trading.engine.constants import DEFAULT_LOT
from trading.engine.errors import AlgoConfigError
from trading.engine.money import BPS, ZERO, floor_to_step, to_decimal
from trading.engine.orders import (
    Fill,
    IdFactory,
    Order,
    OrderIntent,
    OrderSide,
    OrderType,
    TimeInForce,
    new_order_id,
)


@dataclass(frozen=True, slots=True)
class AlgoReport:
    """Progress of an execution algorithm."""

    algo_id: str
    target: Decimal
    filled: Decimal
    working: Decimal
    progress: Decimal  # filled / target
    avg_price: Decimal | None
    arrival_price: Decimal
    slippage_bps: Decimal | None  # positive = worse than arrival
    slices_sent: int
    slices_total: int
    done: bool


class ExecutionAlgo:
    """Schedule-driven parent order; subclasses supply the slice weights."""

    def __init__(
        self,
        *,
        account: str,
        symbol: str,
        side: OrderSide,
        quantity: Decimal,
        start: datetime,
        duration: timedelta,
        slices: int,
        arrival_price: Decimal,
        max_participation: Decimal | None = None,
        lot: Decimal = DEFAULT_LOT,
        algo_id: str = "",
        strategy: str = "",
        id_factory: IdFactory = new_order_id,
    ) -> None:
        if slices < 1 or duration < timedelta(0) or quantity <= 0 or arrival_price <= 0:
            raise AlgoConfigError("need slices >= 1, duration >= 0, quantity > 0, arrival > 0")
        if max_participation is not None and not ZERO < max_participation <= 1:
            raise AlgoConfigError("max_participation must be in (0, 1]")
        self.account, self.symbol, self.side = account, symbol, OrderSide(side)
        self.quantity, self.arrival_price = quantity, arrival_price
        self.max_participation, self.lot = max_participation, lot
        self.algo_id = algo_id or id_factory()
        self.strategy = strategy or self.algo_id
        self._ids = id_factory
        step = duration / slices
        self.times = [start + step * i for i in range(slices)]
        self._targets = self._cumulative_targets(self.weights(slices))
        self._next = 0  # index of the next slice not yet reached
        self._working: dict[str, Decimal] = {}  # open child id -> quantity sent
        self._child_filled: dict[str, Decimal] = {}  # open child id -> quantity filled
        self._volume = ZERO  # observed since the previous child
        self.filled = ZERO
        self._notional = ZERO
        self.slices_sent = 0

    def weights(self, slices: int) -> Sequence[Decimal]:
        """Return the relative size of each slice (override)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- market data

    def observe_volume(self, quantity: Decimal) -> None:
        """Count traded volume towards the participation cap."""
        self._volume += quantity

    def observe_trade(self, trade: Trade) -> None:
        """Count a trade's size if it is in this algo's symbol."""
        if trade.symbol == self.symbol:
            self._volume += to_decimal(trade.size)

    def observe_bar(self, bar: Bar) -> None:
        """Count a bar's volume if it is in this algo's symbol."""
        if bar.symbol == self.symbol:
            self._volume += to_decimal(bar.volume)

    # ----------------------------------------------------------------- scheduling

    def due(self, now: datetime) -> list[OrderIntent]:
        """Return the child intent for the slices reached by ``now`` (at most one)."""
        reached = self._next
        while reached < len(self.times) and self.times[reached] <= now:
            reached += 1
        if reached == self._next:
            return []
        self._next = reached
        want = self._targets[reached - 1] - self.filled - self.working
        if self.max_participation is not None:
            cap = floor_to_step(self.max_participation * self._volume, self.lot)
            want = min(want, cap)
        if want <= 0:
            return []
        self._volume = ZERO
        oid = self._ids()
        self._working[oid] = want
        self._child_filled[oid] = ZERO
        self.slices_sent += 1
        return [
            OrderIntent(
                account=self.account,
                symbol=self.symbol,
                side=self.side,
                quantity=want,
                type=OrderType.MARKET,
                tif=TimeInForce.IOC,
                strategy=self.strategy,
                signal=f"{self.algo_id}:{reached - 1}",
                client_order_id=oid,
            )
        ]

    # ----------------------------------------------------------------- OMS listener

    def on_fill(self, fill: Fill) -> None:
        """Track a child's fill."""
        oid = fill.order_id
        if oid in self._working:
            self.filled += fill.quantity
            self._notional += fill.quantity * fill.price
            self._child_filled[oid] += fill.quantity

    def on_order(self, order: Order) -> None:
        """Forget a child that finished; its unfilled part returns to the schedule."""
        oid = order.client_order_id
        if oid in self._working and order.is_terminal:
            del self._working[oid]
            del self._child_filled[oid]

    # ----------------------------------------------------------------- reporting

    @property
    def working(self) -> Decimal:
        """Return the quantity sent in children that are still open and unfilled."""
        return sum(self._working.values(), ZERO) - sum(self._child_filled.values(), ZERO)

    @property
    def avg_price(self) -> Decimal | None:
        """Return the average fill price, if anything filled."""
        return self._notional / self.filled if self.filled else None

    @property
    def slippage_bps(self) -> Decimal | None:
        """Return (avg − arrival) / arrival in bps, signed so positive is a cost."""
        avg = self.avg_price
        if avg is None:
            return None
        sign = 1 if self.side is OrderSide.BUY else -1
        return sign * (avg - self.arrival_price) / self.arrival_price * BPS

    @property
    def done(self) -> bool:
        """Return True when everything filled or the schedule ended with nothing working."""
        if self.filled >= self.quantity:
            return True
        return self._next >= len(self.times) and not self._working

    def report(self) -> AlgoReport:
        """Return the current progress."""
        return AlgoReport(
            algo_id=self.algo_id,
            target=self.quantity,
            filled=self.filled,
            working=self.working,
            progress=self.filled / self.quantity,
            avg_price=self.avg_price,
            arrival_price=self.arrival_price,
            slippage_bps=self.slippage_bps,
            slices_sent=self.slices_sent,
            slices_total=len(self.times),
            done=self.done,
        )

    def _cumulative_targets(self, weights: Sequence[Decimal]) -> list[Decimal]:
        if len(weights) != len(self.times) or any(w < 0 for w in weights):
            raise AlgoConfigError("need one non-negative weight per slice")
        total = sum(weights, ZERO)
        if total <= 0:
            raise AlgoConfigError("weights must not all be zero")
        targets, running = [], ZERO
        for w in weights:
            running += w
            targets.append(floor_to_step(self.quantity * running / total, self.lot))
        targets[-1] = self.quantity
        return targets


class TwapAlgo(ExecutionAlgo):
    """Time-weighted: equal slices."""

    def weights(self, slices: int) -> Sequence[Decimal]:
        """Return equal weights."""
        return [Decimal(1)] * slices


class VwapAlgo(ExecutionAlgo):
    """Volume-weighted: slices follow a volume profile (one weight per slice)."""

    def __init__(self, *, profile: Sequence[Decimal | float | int], **kwargs: object) -> None:
        self.profile = [to_decimal(w) for w in profile]
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def weights(self, slices: int) -> Sequence[Decimal]:
        """Return the volume profile."""
        return self.profile


def volume_profile(volumes: Sequence[float], slices: int) -> list[Decimal]:
    """Bucket historical per-period ``volumes`` into ``slices`` consecutive weights."""
    if slices < 1 or len(volumes) < slices:
        raise AlgoConfigError("need at least one volume per slice")
    size = len(volumes) / slices
    edges = [round(size * i) for i in range(slices + 1)]
    return [sum((to_decimal(v) for v in volumes[a:b]), ZERO) for a, b in pairwise(edges)]
