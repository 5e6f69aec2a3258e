"""The live-trading gate, the retry policy and exchange-state translation (no network)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.adapters.base import (
    VENUE_COST_KEY,
    LiveTradingBlocked,
    LiveVenueError,
    RetryPolicy,
    VenueConfigError,
    VenueOrderState,
    VenueOrderStatus,
    VenueTrade,
    apply_state,
    live_trading_blockers,
    require_live_trading,
)
from trading.engine.orders import Liquidity, Order, OrderSide, OrderStatus, OrderType
from trading.engine.venue import VenueEventKind

D = Decimal
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
OPEN, CLOSED = VenueOrderStatus.OPEN, VenueOrderStatus.CLOSED


def limit_buy(qty: str = "1", price: str = "100") -> Order:
    """Return a pending limit buy of BTC-USD."""
    return Order(
        symbol="BTC-USD",
        side=OrderSide.BUY,
        quantity=D(qty),
        type=OrderType.LIMIT,
        price=D(price),
        account="a",
        client_order_id="c1",
    )


def state(
    filled: str,
    status: VenueOrderStatus = OPEN,
    *,
    cost: str | None = None,
    fee: str | None = None,
    trades: tuple[VenueTrade, ...] = (),
    client_order_id: str = "c1",
) -> VenueOrderState:
    """Return an exchange snapshot of venue order v1."""
    return VenueOrderState(
        venue_order_id="v1",
        client_order_id=client_order_id,
        symbol="BTC-USD",
        side="buy",
        status=status,
        quantity=D("1"),
        filled=D(filled),
        price=D("100"),
        cost=D(cost) if cost is not None else None,
        fee=D(fee) if fee is not None else None,
        ts=T0,
        trades=trades,
    )


def trade(tid: str, qty: str, price: str, fee: str = "0", minute: int = 0) -> VenueTrade:
    """Return an execution of venue order v1."""
    return VenueTrade(
        tid,
        "v1",
        "BTC-USD",
        "buy",
        D(qty),
        D(price),
        D(fee),
        Liquidity.MAKER,
        T0 + timedelta(minutes=minute),
    )


# ------------------------------------------------------------------------------------ gate

GATE_CASES = [
    (True, True, "live", []),
    (False, True, "live", ["LIVE_TRADING"]),
    (True, False, "live", ["API key"]),
    (True, True, "paper", ["paper mode"]),
    (False, False, "live", ["LIVE_TRADING", "API key"]),
    (False, True, "paper", ["LIVE_TRADING", "paper mode"]),
    (True, False, "paper", ["API key", "paper mode"]),
    (False, False, "paper", ["LIVE_TRADING", "API key", "paper mode"]),
    (True, True, "LIVE", []),
    (True, True, "", ["no mode"]),
]


@pytest.mark.parametrize(("env", "keys", "mode", "expected"), GATE_CASES)
def test_live_trading_blockers_name_every_missing_condition(
    env: bool, keys: bool, mode: str, expected: list[str]
) -> None:
    blockers = live_trading_blockers(env, keys, mode)

    assert len(blockers) == len(expected)
    for blocker, phrase in zip(blockers, expected, strict=True):
        assert phrase in blocker


def test_require_live_trading_raises_with_the_blockers() -> None:
    require_live_trading(True, True, "live")
    with pytest.raises(LiveTradingBlocked) as caught:
        require_live_trading(False, True, "paper")
    assert len(caught.value.blockers) == 2
    assert "LIVE_TRADING" in str(caught.value)


def test_blockers_name_the_venue_when_given() -> None:
    assert "binance API key" in live_trading_blockers(True, False, "live", venue="binance")[0]


# ----------------------------------------------------------------------------------- retry


def test_retry_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=6, initial=0.5, maximum=4.0, jitter=0.0)

    assert [policy.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_retry_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(initial=1.0, maximum=1.0, jitter=0.25)
    rng = random.Random(7)

    delays = [policy.delay(0, rng) for _ in range(200)]

    assert all(0.75 <= d <= 1.0 for d in delays) and len(set(delays)) > 1


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": -1}, {"initial": 0}, {"maximum": 0.1}, {"jitter": 2.0}]
)
def test_retry_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(VenueConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- translation


def test_fills_are_the_growth_of_the_cumulative_figures() -> None:
    order = limit_buy()

    first = apply_state(order, state("0.2", cost="20", fee="0.02"), T0)
    again = apply_state(order, state("0.2", cost="20", fee="0.02"), T0)
    second = apply_state(order, state("0.5", cost="50.9", fee="0.05"), T0)

    assert [e.kind for e in first] == [VenueEventKind.ACCEPTED, VenueEventKind.FILL]
    assert again == []
    fill = second[0].fill
    assert fill is not None
    assert (fill.quantity, fill.price, fill.fee) == (D("0.3"), D("103"), D("0.03"))
    assert fill.venue_trade_id == "v1:0.5"
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.metadata[VENUE_COST_KEY] == "50.9"


def test_a_reloaded_order_prices_the_next_fill_from_its_average() -> None:
    order = limit_buy()
    order.transition(OrderStatus.OPEN, T0)
    order.fill(D("0.2"), D("100"), D("0.02"), T0)  # as restored from storage, no metadata

    events = apply_state(order, state("0.4", cost="41", fee="0.04"), T0)

    fill = events[0].fill
    assert fill is not None and (fill.quantity, fill.price, fill.fee) == (
        D("0.2"),
        D("105"),
        D("0.02"),
    )


def test_trades_give_one_fill_each_after_those_already_booked() -> None:
    order = limit_buy()
    trades = (trade("t1", "0.2", "100", "0.02"), trade("t2", "0.3", "99", "0.03", minute=1))
    apply_state(order, state("0.2", trades=trades[:1]), T0)

    events = apply_state(order, state("0.5", trades=trades), T0)

    assert [(e.fill.venue_trade_id, e.fill.price) for e in events if e.fill] == [("t2", D("99"))]
    assert order.fees == D("0.05")


def test_trades_that_do_not_line_up_fall_back_to_the_cumulative_figures() -> None:
    order = limit_buy()
    apply_state(order, state("0.1", cost="10"), T0)  # our booking cuts through trade t1
    trades = (trade("t1", "0.2", "100"), trade("t2", "0.3", "100", minute=1))

    events = apply_state(order, state("0.5", cost="50", trades=trades), T0)

    fills = [e.fill for e in events if e.fill]
    assert [(f.quantity, f.price, f.venue_trade_id) for f in fills] == [
        (D("0.4"), D("100"), "v1:0.5")
    ]


def test_a_closed_order_with_a_remainder_is_cancelled_after_its_fills() -> None:
    order = limit_buy()

    events = apply_state(order, state("0.4", CLOSED, cost="40"), T0)

    assert [e.kind for e in events][-2:] == [VenueEventKind.FILL, VenueEventKind.CANCELLED]
    assert order.status is OrderStatus.CANCELLED and "0.6 unfilled" in order.reject_reason


@pytest.mark.parametrize(
    ("status", "kinds", "final"),
    [
        (VenueOrderStatus.REJECTED, [VenueEventKind.REJECTED], OrderStatus.REJECTED),
        (
            VenueOrderStatus.EXPIRED,
            [VenueEventKind.ACCEPTED, VenueEventKind.EXPIRED],
            OrderStatus.EXPIRED,
        ),
        (
            VenueOrderStatus.CANCELED,
            [VenueEventKind.ACCEPTED, VenueEventKind.CANCELLED],
            OrderStatus.CANCELLED,
        ),
        (CLOSED, [VenueEventKind.ACCEPTED, VenueEventKind.CANCELLED], OrderStatus.CANCELLED),
    ],
)
def test_unfilled_terminal_states(
    status: VenueOrderStatus, kinds: list[VenueEventKind], final: OrderStatus
) -> None:
    order = limit_buy()

    events = apply_state(order, state("0", status), T0)

    assert [e.kind for e in events] == kinds and order.status is final
    assert apply_state(order, state("0", status), T0) == []  # terminal orders stay put


def test_an_overfill_is_capped_at_the_order_quantity() -> None:
    order = limit_buy("1")

    apply_state(order, state("1.5", CLOSED, cost="150"), T0)

    assert order.filled_quantity == D("1") and order.status is OrderStatus.FILLED


def test_a_snapshot_of_another_order_is_refused() -> None:
    with pytest.raises(LiveVenueError, match="belongs to"):
        apply_state(limit_buy(), state("0", client_order_id="someone-else"), T0)


# -------------------------------------------------------------------------------- properties

increments = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=50_000),  # quantity in 1e-5 lots
        st.integers(min_value=1, max_value=10_000_000),  # price in cents
        st.integers(min_value=0, max_value=5_000),  # fee in 1e-4
        st.booleans(),  # observe this snapshot twice
    ),
    min_size=1,
    max_size=8,
)


def _replay(steps: list[tuple[int, int, int, bool]], with_trades: bool) -> tuple[Order, list]:
    total = sum(D(q) / 100_000 for q, _p, _f, _r in steps)
    order = limit_buy(str(total), "1")
    filled = cost = fees = D(0)
    trades: list[VenueTrade] = []
    fills = []
    for n, (q, p, f, repeat) in enumerate(steps):
        qty, px, fee = D(q) / 100_000, D(p) / 100, D(f) / 10_000
        filled, cost, fees = filled + qty, cost + qty * px, fees + fee
        trades.append(trade(f"t{n}", str(qty), str(px), str(fee), minute=n))
        snap = state(
            str(filled), cost=str(cost), fee=str(fees), trades=tuple(trades) if with_trades else ()
        )
        for _ in range(2 if repeat else 1):
            fills += [e.fill for e in apply_state(order, snap, T0) if e.fill]
    return order, fills


@settings(max_examples=200, deadline=None)
@given(steps=increments, with_trades=st.booleans())
def test_booked_fills_add_up_to_the_venue_totals(steps: list, with_trades: bool) -> None:
    order, fills = _replay(steps, with_trades)

    total = sum(D(q) / 100_000 for q, _p, _f, _r in steps)
    cost = sum(D(q) / 100_000 * D(p) / 100 for q, p, _f, _r in steps)
    assert sum(f.quantity for f in fills) == total == order.filled_quantity
    assert sum(f.fee for f in fills) == sum(D(f) / 10_000 for _q, _p, f, _r in steps)
    assert order.status is OrderStatus.FILLED
    notional = sum(f.quantity * f.price for f in fills)
    if with_trades:
        assert notional == cost  # per-trade fills are exact
    else:
        assert abs(notional - cost) <= cost * D("1e-20")  # one division per delta
    assert len({f.venue_trade_id for f in fills}) == len(fills)
