"""The engine's metrics listener on a real OMS and paper venue equals prometheus-client's own
per-call series: orders by status and type, fills, rejects by rule, tick-to-order counts, and
slippage against the reference price when each order was sent (buckets, count and the very sum).
"""

from __future__ import annotations

import gc
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from marketdata.engine.events import Trade
from monitoring.metrics import SLIPPAGE_BPS, EngineMetrics
from trading.engine.hooks import Decision, PreTradeResult
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent, OrderSide, OrderType
from trading.engine.portfolio import Portfolio
from trading.engine.venue import PaperVenue, VenueConfig

T0 = datetime(2024, 5, 1, tzinfo=UTC)
SYMBOLS = ("AAA-USD", "BBB-USD")


class RejectLarge:
    """Pre-trade hook: rejects orders of 5 or more, naming a rule as the risk checks do."""

    def check(self, order, account) -> PreTradeResult:
        if order.quantity >= 5:
            return PreTradeResult(Decision.REJECT, Decimal(0), "max_order_notional: too large")
        return PreTradeResult(Decision.APPROVE, order.quantity)


class Calls:
    """OMS listener recording what each call saw, as it saw it."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, str, str]] = []  # (client order id, status, type)
        self.fills: list = []

    def on_order(self, order) -> None:
        self.orders.append((order.client_order_id, order.status.value, order.type.value))

    def on_fill(self, fill) -> None:
        self.fills.append(fill)


class Events:
    """The engine's own event count (the runtime's ``RunSummary``)."""

    events = 0


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def slippage_bps(side: str, price: Decimal, decided: Decimal) -> float:
    """The definition: fill price against the decision price in bps, + when worse."""
    reference = float(decided)
    sign = 1.0 if side == "buy" else -1.0
    return sign * (float(price) - reference) / reference * 1e4


def run_session(account: str, seed: int) -> tuple[Calls, dict[str, Decimal | None], int]:
    """Trade a seeded session through a real OMS with the metrics listening; return the calls
    every listener saw, each order's reference price when it was sent, and the events."""
    rng = random.Random(seed)
    venue = PaperVenue(VenueConfig(synthetic_spread_bps=Decimal("6")))
    oms = OrderManager(
        venue, hook=RejectLarge(), portfolios=[Portfolio(account, Decimal("10000000"), ts=T0)]
    )
    counted = Events()
    metrics = EngineMetrics(account, reference_price=venue.reference_price,
                            events=lambda: counted.events)  # fmt: skip
    calls = Calls()
    oms.add_listener(calls)
    oms.add_listener(metrics)
    prices = dict.fromkeys(SYMBOLS, 100.0)
    decided: dict[str, Decimal | None] = {}
    for i in range(3000):
        symbol = rng.choice(SYMBOLS)
        prices[symbol] *= 1 + rng.gauss(0, 0.002)
        now = T0 + timedelta(milliseconds=100 * i)
        counted.events += 1
        metrics.tick_received = time.monotonic()
        oms.on_trade(Trade(symbol, now, round(prices[symbol], 2), 1.0, trade_id=str(i)))
        if rng.random() < 0.15:
            cid = f"{account}-{i}"
            side = rng.choice([OrderSide.BUY, OrderSide.SELL])
            quantity = Decimal(rng.choice([1, 2, 3, 6]))  # 6: rejected by the hook
            limit = rng.random() < 0.4  # rests, fills later (or never) at its own price
            price = None
            if limit:
                away = 1 - 0.003 if side is OrderSide.BUY else 1 + 0.003
                price = Decimal(str(round(prices[symbol] * away, 2)))
            decided[cid] = venue.reference_price(symbol)
            oms.submit(
                OrderIntent(account=account, symbol=symbol, side=side, quantity=quantity,
                            type=OrderType.LIMIT if limit else OrderType.MARKET, price=price,
                            client_order_id=cid),
                now,
            )  # fmt: skip
    return calls, decided, counted.events


def test_engine_listener_equals_the_per_call_series_on_a_real_oms():
    account = "listener-oms"
    calls, decided, events = run_session(account, seed=41)
    statuses = Counter((status, kind) for _, status, kind in calls.orders)
    fills = Counter((f.symbol, f.side.value) for f in calls.fills)
    slips = [slippage_bps(f.side.value, f.price, decided[f.order_id]) for f in calls.fills]
    rejected = statuses[("rejected", "market")] + statuses[("rejected", "limit")]
    # The session exercises every path: fills at once, later fills, rejects, orders left open.
    assert statuses[("filled", "market")] and statuses[("filled", "limit")] and rejected
    assert statuses[("open", "limit")] > statuses[("filled", "limit")]

    assert sample("rrr_engine_events_total", account=account) == events
    for (status, kind), count in statuses.items():
        assert sample("rrr_orders_total", account=account, status=status, type=kind) == count
    for (symbol, side), count in fills.items():
        assert sample("rrr_fills_total", account=account, symbol=symbol, side=side) == count
    assert sample("rrr_order_rejects_total", account=account, rule="max_order_notional") == (
        rejected
    )
    new_orders = len({cid for cid, _, _ in calls.orders})
    assert sample("rrr_engine_tick_to_order_seconds_count", account=account) == new_orders

    registry = CollectorRegistry()
    reference = Histogram("reference", "", buckets=SLIPPAGE_BPS._kwargs["buckets"],
                          registry=registry)  # fmt: skip
    for value in slips:
        reference.observe(value)
    for bound in [*SLIPPAGE_BPS._kwargs["buckets"], float("inf")]:
        le = "+Inf" if bound == float("inf") else str(float(bound))
        got = sample("rrr_fill_slippage_bps_bucket", account=account, le=le)
        assert got == registry.get_sample_value("reference_bucket", {"le": le}), le
    child = SLIPPAGE_BPS.labels(account)
    assert child._sum.get() == reference._sum.get()  # the same float, added in the same order
    assert len(slips) == len(calls.fills) > 50


def test_the_decision_price_is_the_reference_when_sent_not_when_filled():
    account = "listener-decision"
    venue = PaperVenue(VenueConfig())
    oms = OrderManager(venue, portfolios=[Portfolio(account, Decimal("1000000"), ts=T0)])
    metrics = EngineMetrics(account, reference_price=venue.reference_price)
    oms.add_listener(metrics)
    oms.on_trade(Trade("AAA-USD", T0, 100.0, 1.0, trade_id="1"))
    intent = OrderIntent(account=account, symbol="AAA-USD", side=OrderSide.BUY, quantity=Decimal(1),
                         type=OrderType.LIMIT, price=Decimal("99"))  # fmt: skip
    oms.submit(intent, T0)
    oms.on_trade(Trade("AAA-USD", T0 + timedelta(seconds=1), 98.0, 1.0, trade_id="2"))
    # Filled at its limit, 99, decided at 100: 100 bps better than decided (bucket -50 and up).
    assert sample("rrr_fills_total", account=account, symbol="AAA-USD", side="buy") == 1
    assert sample("rrr_fill_slippage_bps_bucket", account=account, le="-50.0") == 1
    assert sample("rrr_fill_slippage_bps_count", account=account) == 1
    assert SLIPPAGE_BPS.labels(account)._sum.get() == pytest.approx(-100.0)


def _tracked_kept(with_metrics: bool, orders: int = 300) -> int:
    """Objects the garbage collector tracks that a session of ``orders`` market orders leaves
    alive (allocations less deallocations), with or without the metrics listening."""
    account = f"listener-gc-{with_metrics}"
    venue = PaperVenue(VenueConfig())
    oms = OrderManager(venue, portfolios=[Portfolio(account, Decimal("10000000"), ts=T0)])
    if with_metrics:
        metrics = EngineMetrics(account, reference_price=venue.reference_price,
                                events=lambda: 0)  # fmt: skip
        metrics.tick_received = time.monotonic()
        oms.add_listener(metrics)
    oms.on_trade(Trade("AAA-USD", T0, 100.0, 1.0, trade_id="0"))
    intents = [
        OrderIntent(account=account, symbol="AAA-USD", quantity=Decimal(1), client_order_id=str(i),
                    side=OrderSide.BUY if i % 2 else OrderSide.SELL)
        for i in range(orders)
    ]  # fmt: skip
    oms.submit(intents[0], T0)  # first-time costs (series, caches) outside the count
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for intent in intents[1:]:
            oms.submit(intent, T0)
        return gc.get_count()[0] - before
    finally:
        gc.enable()


def test_the_listener_keeps_nothing_the_collector_tracks_per_fill_until_its_publish():
    # Each object kept until the publish counts toward the next young collection: two per fill
    # (a tuple and the fill) set one off every ~350 orders, inside the ticks that place them.
    without, with_metrics = _tracked_kept(False), _tracked_kept(True)
    assert with_metrics - without <= 5, (without, with_metrics)
