"""Fill models of ``BacktestVenue`` driven through the real OMS and portfolio."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.fills import (
    BacktestVenue,
    FillConfig,
    FixedBps,
    SquareRootImpact,
    VolumeShare,
    synthesise_book,
)
from backtesting.engine.result import round_trips
from marketdata.engine.events import BookSnapshot
from tests.backtesting.engine.helpers import SYM, D, bar, minute
from trading.engine.money import to_decimal
from trading.engine.oms import OrderManager
from trading.engine.orders import (
    Order,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    SequentialIds,
    TimeInForce,
)
from trading.engine.portfolio import Portfolio

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def stack(**cfg: object) -> tuple[OrderManager, Portfolio]:
    venue = BacktestVenue(FillConfig(**cfg))  # type: ignore[arg-type]
    pf = Portfolio("a", D(100000), ts=minute(0))
    return OrderManager(venue, portfolios=[pf], id_factory=SequentialIds()), pf


def send(oms: OrderManager, side: OrderSide, qty: str, at: int, **kw: object) -> Order:
    """Submit at the end of bar ``at - 1`` (= the start of bar ``at``)."""
    intent = OrderIntent(account="a", symbol=SYM, side=side, quantity=D(qty), **kw)  # type: ignore[arg-type]
    return oms.submit(intent, minute(at))


def dec(x: float) -> Decimal:
    return to_decimal(x)


def test_next_open_fills_at_the_following_bars_open_with_taker_fee() -> None:
    oms, pf = stack(taker_fee_bps=D(10))
    oms.on_bar(bar(0, 100, 101, 99, 100))
    order = send(oms, BUY, "2", 1)
    assert order.status is OrderStatus.PENDING and order.filled_quantity == 0
    oms.on_bar(bar(1, 101, 103, 100, 102))
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == D(101)
    assert pf.cash == D(100000) - D(202) - D("0.202")
    assert pf.position(SYM).mark_price == D(102)  # marked at the close after the fill


def test_close_fills_at_once_at_the_last_close() -> None:
    oms, pf = stack(model="close", taker_fee_bps=D(5))
    oms.on_bar(bar(0, 100, 101, 99, 100.5))
    order = send(oms, BUY, "1", 1)
    assert order.status is OrderStatus.FILLED and order.avg_fill_price == dec(100.5)
    assert pf.fees == dec(100.5) * D(5) / D(10000)


def test_fixed_bps_slippage_moves_both_sides_against_the_trader() -> None:
    oms, pf = stack(slippage=FixedBps(10))
    oms.on_bar(bar(0, 100, 101, 99, 100))
    buy = send(oms, BUY, "1", 1)
    oms.on_bar(bar(1, 100, 101, 99, 100))
    sell = send(oms, SELL, "1", 2)
    oms.on_bar(bar(2, 100, 101, 99, 100))
    assert buy.avg_fill_price == dec(100 * 1.001)
    assert sell.avg_fill_price == dec(100 * 0.999)
    assert pf.realized_pnl == dec(100 * 0.999) - dec(100 * 1.001)


def test_volume_share_slippage_is_quadratic_in_the_share_taken() -> None:
    oms, _ = stack(slippage=VolumeShare(impact=0.1))
    oms.on_bar(bar(0, 100, 101, 99, 100))
    order = send(oms, BUY, "10", 1)
    oms.on_bar(bar(1, 100, 101, 99, 100, v=100))
    assert order.avg_fill_price == dec(100 * (1 + 0.1 * 0.1**2))


def test_square_root_impact_uses_the_bar_range_as_volatility() -> None:
    oms, _ = stack(slippage=SquareRootImpact(k=0.5))
    oms.on_bar(bar(0, 100, 101, 99, 100))
    order = send(oms, SELL, "4", 1, reduce_only=False)
    oms.on_bar(bar(1, 100, 102, 98, 100, v=400))
    sigma = (102 - 98) / 100
    assert order.avg_fill_price == dec(100 * (1 - 0.5 * sigma * math.sqrt(4 / 400)))


def test_volume_cap_leaves_the_rest_working_until_filled() -> None:
    oms, pf = stack(volume_cap=0.1)
    oms.on_bar(bar(0, 100, 101, 99, 100))
    order = send(oms, BUY, "25", 1)
    oms.on_bar(bar(1, 100, 101, 99, 100, v=100))
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled_quantity == D(10)
    oms.on_bar(bar(2, 102, 103, 101, 102, v=100))
    assert order.filled_quantity == D(20) and order.is_working
    oms.on_bar(bar(3, 104, 105, 103, 104, v=100))
    assert order.status is OrderStatus.FILLED
    assert pf.quantity(SYM) == D(25)
    assert order.avg_fill_price == (D(10) * 100 + D(10) * 102 + D(5) * 104) / D(25)


def test_volume_cap_with_ioc_cancels_and_fok_kills() -> None:
    oms, pf = stack(volume_cap=0.1)
    oms.on_bar(bar(0, 100, 101, 99, 100))
    ioc = send(oms, BUY, "25", 1, tif=TimeInForce.IOC)
    fok = send(oms, BUY, "25", 1, tif=TimeInForce.FOK)
    oms.on_bar(bar(1, 100, 101, 99, 100, v=100))
    assert ioc.status is OrderStatus.CANCELLED and ioc.filled_quantity == D(10)
    assert fok.status is OrderStatus.CANCELLED and fok.filled_quantity == 0
    assert pf.quantity(SYM) == D(10)


def test_two_orders_share_one_bars_volume_cap() -> None:
    oms, _ = stack(volume_cap=0.1)
    oms.on_bar(bar(0, 100, 101, 99, 100))
    first, second = send(oms, BUY, "8", 1), send(oms, BUY, "8", 1)
    oms.on_bar(bar(1, 100, 101, 99, 100, v=100))
    assert first.filled_quantity == D(8) and second.filled_quantity == D(2)


def book(t: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> BookSnapshot:
    return BookSnapshot(SYM, minute(t), tuple(bids), tuple(asks))


def test_book_model_walks_given_snapshots_and_consumes_liquidity() -> None:
    oms, _ = stack(model="book", taker_fee_bps=D(10))
    oms.on_book(book(0, [(99, 5)], [(101, 2), (102, 3)]))
    first = send(oms, BUY, "4", 0)
    assert first.status is OrderStatus.FILLED
    assert first.avg_fill_price == (D(2) * 101 + D(2) * 102) / D(4)
    second = send(oms, BUY, "3", 0)  # only 1 left at 102 until the next snapshot
    assert second.status is OrderStatus.PARTIALLY_FILLED and second.filled_quantity == D(1)
    oms.on_book(book(1, [(99, 5)], [(103, 5)]))
    assert second.status is OrderStatus.FILLED
    assert second.avg_fill_price == (D(1) * 102 + D(2) * 103) / D(3)


def test_book_model_synthesises_a_book_from_the_last_bar() -> None:
    synth = synthesise_book(bar(0, 100, 104, 96, 100, v=50), levels=2, volume_cap=None)
    assert synth.asks == ((101.0, 25.0), (103.0, 25.0))
    assert synth.bids == ((99.0, 25.0), (97.0, 25.0))
    oms, _ = stack(model="book", book_levels=2)
    oms.on_bar(bar(0, 100, 104, 96, 100, v=50))
    order = send(oms, BUY, "30", 1)
    assert order.avg_fill_price == (D(25) * 101 + D(5) * 103) / D(30)


def test_limit_orders_rest_at_the_inner_venue_and_fill_as_makers_on_the_bar_path() -> None:
    oms, pf = stack(maker_fee_bps=D(2), taker_fee_bps=D(10))
    oms.on_bar(bar(0, 100, 101, 99, 100))
    resting = send(oms, BUY, "1", 1, type=OrderType.LIMIT, price=D(99))
    marketable = send(oms, BUY, "1", 1, type=OrderType.LIMIT, price=D(102))
    oms.on_bar(bar(1, 100.5, 101, 98.5, 99.5))
    assert marketable.avg_fill_price == dec(100.5)  # at the open, taking liquidity
    assert resting.status is OrderStatus.FILLED and resting.avg_fill_price == D(99)
    assert pf.fees == dec(100.5) * D(10) / D(10000) + D(99) * D(2) / D(10000)


def test_stop_orders_trigger_on_the_bar_path() -> None:
    oms, pf = stack()
    oms.on_bar(bar(0, 100, 101, 99, 100))
    send(oms, BUY, "1", 1)
    oms.on_bar(bar(1, 100, 101, 99, 100))
    stop = send(oms, SELL, "1", 2, type=OrderType.STOP, stop_price=D(97), reduce_only=True)
    oms.on_bar(bar(2, 99, 99.5, 96, 96.5))
    assert stop.status is OrderStatus.FILLED and stop.avg_fill_price == D(97)
    assert pf.quantity(SYM) == 0


def test_reduce_only_without_position_is_rejected_and_cancel_stops_a_held_order() -> None:
    oms, pf = stack()
    oms.on_bar(bar(0, 100, 101, 99, 100))
    rejected = send(oms, SELL, "1", 1, reduce_only=True)
    assert rejected.status is OrderStatus.REJECTED
    held = send(oms, BUY, "1", 1)
    oms.cancel(held.client_order_id, minute(1))
    oms.on_bar(bar(1, 100, 101, 99, 100))
    assert held.status is OrderStatus.CANCELLED and pf.quantity(SYM) == 0


def test_fill_config_rejects_a_cap_outside_zero_one() -> None:
    with pytest.raises(BacktestConfigError):
        FillConfig(volume_cap=1.5)


orders_st = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 40), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    orders=orders_st,
    cap=st.sampled_from([None, 0.05, 0.2]),
    model=st.sampled_from(["next_open", "close", "book"]),
    seed=st.integers(0, 10_000),
)
def test_invariants_fills_within_caps_and_exact_accounting(
    orders: list[tuple[str, int, bool]], cap: float | None, model: str, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    oms, pf = stack(model=model, volume_cap=cap, taker_fee_bps=D(7))
    fills: list = []

    class Tap:
        def on_order(self, order: Order) -> None:
            pass

        def on_fill(self, fill: object) -> None:
            fills.append(fill)

    oms.add_listener(Tap())
    price, sent, volumes = 100.0, [], []
    for i in range(len(orders) + 6):
        move = rng.uniform(-1, 1)
        o, c = price, round(price + move, 2)
        volumes.append(round(rng.uniform(20, 200), 3))
        oms.on_bar(bar(i, o, max(o, c) + 0.3, min(o, c) - 0.3, c, v=volumes[-1]))
        price = c
        if i < len(orders):
            side, qty, reduce = orders[i]
            intent = OrderIntent(
                account="a", symbol=SYM, side=OrderSide(side), quantity=D(qty), reduce_only=reduce
            )
            sent.append(oms.submit(intent, minute(i + 1)))
    for order in sent:
        assert order.filled_quantity <= order.quantity
    per_bar: dict = {}
    for f in fills:
        per_bar[f.ts] = per_bar.get(f.ts, D(0)) + f.quantity
    if cap is not None and model != "book":
        shift = 1 if model == "close" else 0  # close fills are stamped at the bar's end
        for ts, qty in per_bar.items():
            index = int((ts - minute(0)) / timedelta(minutes=1)) - shift
            assert qty <= to_decimal(volumes[index] * cap)
    assert pf.equity == pf.deposits + pf.realized_pnl + pf.unrealized_pnl - pf.fees
    trips = round_trips(fills, last_prices={SYM: to_decimal(price)})
    assert sum((t.pnl for t in trips), D(0)) == pf.equity - pf.deposits


opens_st = st.lists(
    st.sampled_from([100.0, 100.37, 99.1234, 101.5, 0.005, 98.76]), min_size=2, max_size=8
)
bar_orders_st = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]),
            st.sampled_from(["1", "3", "0.5", "1500"]),  # 1500 at ~100: beyond the cash
            st.booleans(),
            st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
        ),
        max_size=3,
    ),
    min_size=2,
    max_size=8,
)


@settings(max_examples=80, deadline=None)
@given(opens=opens_st, per_bar=bar_orders_st, fee=st.sampled_from([D(0), D(10), D("2.5")]))
def test_fills_at_the_open_take_the_general_paths_steps(
    opens: list[float], per_bar: list[list[tuple[str, str, bool, TimeInForce]]], fee: Decimal
) -> None:
    """``on_bar``'s next-open path (``_fill_at_open``) gives the events, fills and account of
    the general path (``_run_held`` and ``_execute``): several orders a bar, reduce-only
    orders capped or cancelled, IOC and FOK, buying-power cuts, prices off whole cents."""
    seen: list[list[object]] = [[], []]
    stacks = []
    for k in (0, 1):
        oms, pf = stack(taker_fee_bps=fee)
        log = seen[k]

        class Tap:
            def on_order(self, order: Order, log: list = log) -> None:
                log.append((order.client_order_id, order.status, order.reject_reason))

            def on_fill(self, fill: object, log: list = log) -> None:
                log.append(repr(fill))

        oms.add_listener(Tap())
        stacks.append((oms, pf))
    venue = stacks[1][0].venue
    venue._plain_open = False  # the general path
    fast = stacks[0][0].venue
    taken = []
    run = fast._fill_at_open
    fast._fill_at_open = lambda bar, queue: taken.append(1) or run(bar, queue)
    n = max(len(opens), len(per_bar)) + 1
    for i in range(n):
        o = opens[i % len(opens)]
        for k, (oms, _) in enumerate(stacks):
            events = oms.on_bar(bar(i, o, o * 1.01, o * 0.99, o))
            seen[k].append([(e.kind, e.order.client_order_id, e.status, e.reason) for e in events])
            for side, qty, reduce, tif in per_bar[i] if i < len(per_bar) else ():
                intent = OrderIntent(
                    account="a",
                    symbol=SYM,
                    side=OrderSide(side),
                    quantity=D(qty),
                    reduce_only=reduce,
                    tif=tif,
                )
                try:
                    order = oms.submit(intent, minute(i + 1))
                    seen[k].append((order.client_order_id, order.status, order.reject_reason))
                except Exception as exc:  # noqa: BLE001 - the same refusal on both paths
                    seen[k].append(repr(exc))
    assert seen[0] == seen[1]
    (_, a), (_, b) = stacks
    assert (a.cash, a.fees, a.realized_pnl) == (b.cash, b.fees, b.realized_pnl)
    assert {s: (p.quantity, p.avg_price) for s, p in a.positions.items()} == {
        s: (p.quantity, p.avg_price) for s, p in b.positions.items()
    }
    held = [e for e in seen[0] if isinstance(e, tuple) and e[1] is OrderStatus.PENDING]
    assert bool(taken) == bool(held)  # the fast path ran for the orders held
