"""Parent orders worked by TWAP/VWAP (``algos``): started from intents, children through the OMS.

A strategy asks ``ctx.buy(symbol, qty, algo="twap", duration=600, slices=10)``; the intent
carries the request in ``metadata["algo"]`` and the ``StrategyRunner`` hands it to its
``AlgoBook`` instead of the OMS. On every later event the book asks each parent for the slices
that came due and submits those children through the same ``OrderManager`` (so the pre-trade
hook, buying power and the venue judge each child as any order), feeds them the traded volume
for VWAP participation, and tracks fills as an OMS listener. Backtests and ``runtrader`` run the
same ``StrategyRunner``, so both execute algos through this code.

Children have deterministic ids (``algo_child_id``: a UUID derived from the parent's id and the
child's number, storable as any order id), so a parent restored after a restart with the
children already sent (``restore``) never sends one twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID, uuid5

from marketdata.engine.events import Bar, Trade
from trading.engine.algos import ExecutionAlgo, TwapAlgo, VwapAlgo
from trading.engine.errors import AlgoConfigError
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Order, OrderIntent, OrderType

ALGO_KINDS = ("twap", "vwap")
MAX_SLICES = 10_000
_CHILD_IDS = UUID("6f1d9a52-3c0e-5b8e-9a61-2a4c7d0e8b13")  # namespace of algo children's ids


def algo_child_id(parent_id: str, n: int) -> str:
    """Return the id of a parent's ``n``-th child (the same after a restart)."""
    return uuid5(_CHILD_IDS, f"{parent_id}/{n}").hex


@dataclass(frozen=True, slots=True)
class AlgoSpec:
    """How a parent is worked: TWAP or VWAP over ``duration`` in ``slices`` children."""

    kind: str
    duration: timedelta
    slices: int
    max_participation: Decimal | None = None
    profile: tuple[Decimal, ...] | None = None  # VWAP: one volume weight per slice

    def __post_init__(self) -> None:
        if self.kind not in ALGO_KINDS:
            raise AlgoConfigError(f"algo must be one of {', '.join(ALGO_KINDS)}, not {self.kind!r}")
        if self.duration <= timedelta(0):
            raise AlgoConfigError("algo duration must be > 0")
        if not 1 <= self.slices <= MAX_SLICES:
            raise AlgoConfigError(f"algo slices must be in 1..{MAX_SLICES}")
        if self.kind == "vwap" and (self.profile is None or len(self.profile) != self.slices):
            raise AlgoConfigError("vwap needs a volume profile with one weight per slice")

    @classmethod
    def from_request(
        cls,
        algo: str,
        *,
        duration: float | timedelta,
        slices: int | None = None,
        max_participation: Any = None,
        profile: Iterable[Any] | None = None,
    ) -> AlgoSpec:
        """Build a spec from the keywords a strategy or a service passes."""
        span = duration if isinstance(duration, timedelta) else timedelta(seconds=float(duration))
        weights = tuple(_decimal(w, "profile") for w in profile) if profile is not None else None
        count = int(slices) if slices is not None else len(weights or ()) or _slices_for(span)
        cap = _decimal(max_participation, "max_participation") if max_participation else None
        return cls(str(algo).lower(), span, count, cap, weights)

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> AlgoSpec:
        """Rebuild a spec stored by ``to_metadata``."""
        try:
            return cls.from_request(
                data["kind"],
                duration=float(data["duration"]),
                slices=int(data["slices"]),
                max_participation=data.get("max_participation"),
                profile=data.get("profile"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, AlgoConfigError):
                raise
            raise AlgoConfigError(f"bad algo request {dict(data)!r}: {exc}") from None

    def to_metadata(self) -> dict[str, Any]:
        """Return the spec as JSON-ready data (stored on the parent order)."""
        return {
            "kind": self.kind,
            "duration": self.duration.total_seconds(),
            "slices": self.slices,
            "max_participation": None
            if self.max_participation is None
            else str(self.max_participation),
            "profile": None if self.profile is None else [str(w) for w in self.profile],
        }


def _slices_for(span: timedelta) -> int:
    """Default: one child a minute, at least one, at most 60."""
    return max(1, min(60, int(span.total_seconds() // 60)))


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise AlgoConfigError(f"algo {name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise AlgoConfigError(f"algo {name} must be finite")
    return number


def algo_metadata(intent_metadata: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Return the algo request an intent carries, or None for a plain order."""
    if not intent_metadata:
        return None
    return intent_metadata.get("algo")


class AlgoBook:
    """The parents an engine is working; an OMS listener that submits their children."""

    def __init__(self, oms: OrderManager, lot_of=None) -> None:
        self.oms = oms
        self.active: dict[str, ExecutionAlgo] = {}
        self.listening = self.active  # the OMS tells it nothing while no parent works
        self.finished: list[ExecutionAlgo] = []
        self._lot_of = lot_of
        # Told of each parent started (not restored) before its first child is sent: runtrader
        # records it with that child's batch, so a restart resumes it (``trading.persistence``).
        self.on_start: Callable[[OrderIntent, ExecutionAlgo], None] | None = None
        oms.add_listener(self)

    def start(
        self,
        intent: OrderIntent,
        now: datetime,
        *,
        sent: int = 0,
        arrival: Decimal | None = None,
        record: bool = True,
    ) -> ExecutionAlgo:
        """Start working ``intent`` (its ``metadata["algo"]``) from ``now``; return the parent.

        ``sent``: children already sent before a restart (their ids are not used again);
        ``arrival``: the price slippage is measured from (default: the current price);
        ``record``: tell ``on_start`` (False for a parent resumed or stored by its caller).
        """
        spec = AlgoSpec.from_metadata(algo_metadata(intent.metadata) or {})
        if intent.type is not OrderType.MARKET:
            raise AlgoConfigError("an algo parent works a market order (its children are)")
        parent_id = intent.client_order_id
        if not parent_id:
            raise AlgoConfigError("an algo parent needs a client order id")
        if parent_id in self.active:
            return self.active[parent_id]
        arrival = arrival or self.oms.reference_price(intent.symbol) or intent.price
        if arrival is None:
            raise AlgoConfigError(f"no price for {intent.symbol} yet: cannot start {spec.kind}")
        counter = iter(range(sent, sent + MAX_SLICES + 1))
        kwargs: dict[str, Any] = {
            "account": intent.account,
            "symbol": intent.symbol,
            "side": intent.side,
            "quantity": intent.quantity,
            "start": now,
            "duration": spec.duration,
            "slices": spec.slices,
            "arrival_price": arrival,
            "max_participation": spec.max_participation,
            "algo_id": parent_id,
            "strategy": intent.strategy,
            "id_factory": lambda: algo_child_id(parent_id, next(counter)),
        }
        if self._lot_of is not None:
            kwargs["lot"] = self._lot_of(intent.symbol)
        algo = (
            VwapAlgo(profile=spec.profile, **kwargs) if spec.kind == "vwap" else TwapAlgo(**kwargs)
        )
        self.active[parent_id] = algo
        if record and self.on_start is not None:
            self.on_start(intent, algo)
        return algo

    def restore(
        self,
        intent: OrderIntent,
        started: datetime,
        children: Iterable[Order],
        now: datetime,
        arrival: Decimal | None = None,
    ) -> ExecutionAlgo:
        """Resume a parent after a restart from its stored children (filled and working)."""
        children = list(children)
        algo = self.start(intent, started, sent=len(children), arrival=arrival, record=False)
        for child in children:
            algo.filled += child.filled_quantity
            if child.avg_fill_price is not None:
                algo._notional += child.filled_quantity * child.avg_fill_price
            if not child.is_terminal:
                algo._working[child.client_order_id] = child.quantity
                algo._child_filled[child.client_order_id] = child.filled_quantity
        algo.slices_sent = len(children)
        # The slices whose time passed while it was down are caught up by the next one due.
        while algo._next < len(algo.times) - 1 and algo.times[algo._next + 1] <= now:
            algo._next += 1
        return algo

    def due(self, now: datetime) -> list[OrderIntent]:
        """Return the children that came due by ``now``; retire parents that are done."""
        intents: list[OrderIntent] = []
        for parent_id, algo in list(self.active.items()):
            intents += algo.due(now)
            if algo.done:
                self.finished.append(self.active.pop(parent_id))
        return intents

    def cancel(self, parent_id: str) -> list[str]:
        """Stop working a parent; return its children still working (for the caller to cancel)."""
        algo = self.active.pop(parent_id, None)
        if algo is None:
            return []
        self.finished.append(algo)
        return list(algo._working)

    def dropped(self, child_id: str) -> None:
        """Forget a child that was never sent (held back by the trading-mode gate)."""
        for algo in self.active.values():
            algo._working.pop(child_id, None)
            algo._child_filled.pop(child_id, None)

    def drain_finished(self) -> list[ExecutionAlgo]:
        """Return and forget the parents that finished since the last call."""
        finished, self.finished = self.finished, []
        return finished

    def observe(self, event: Bar | Trade) -> None:
        """Count traded volume for the participation caps."""
        for algo in self.active.values():
            if isinstance(event, Trade):
                algo.observe_trade(event)
            else:
                algo.observe_bar(event)

    # OMS listener -----------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> None:
        """Credit a child's fill to its parent."""
        for algo in self.active.values():
            algo.on_fill(fill)

    def on_order(self, order: Order) -> None:
        """Let a parent forget a child that finished."""
        for algo in self.active.values():
            algo.on_order(order)
