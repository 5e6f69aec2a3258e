"""Order state machine, fills and validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trading.engine.helpers import T0, order
from trading.engine.errors import IllegalTransition, OrderRejected, OverFill
from trading.engine.orders import (
    Fill,
    Liquidity,
    Order,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    SequentialIds,
    TimeInForce,
    validate_order,
)

D = Decimal


def test_enum_values_match_the_orm_strings() -> None:
    assert [s.value for s in OrderSide] == ["buy", "sell"]
    assert [t.value for t in OrderType] == [
        "market",
        "limit",
        "stop",
        "stop_limit",
        "take_profit",
        "trailing_stop",
    ]
    assert [t.value for t in TimeInForce] == ["gtc", "ioc", "fok", "day"]
    assert [s.value for s in OrderStatus] == [
        "pending",
        "open",
        "partially_filled",
        "filled",
        "cancelled",
        "rejected",
        "expired",
    ]


def test_plain_strings_from_storage_become_enums() -> None:
    o = Order(symbol="X", side="sell", quantity=D(1), type="limit", tif="ioc", status="open")  # type: ignore[arg-type]
    assert o.side is OrderSide.SELL and o.type is OrderType.LIMIT
    assert o.tif is TimeInForce.IOC and o.status is OrderStatus.OPEN


def test_happy_path_pending_open_partial_filled() -> None:
    o = order(qty="2")
    o.transition(OrderStatus.OPEN, T0)
    o.fill(D("0.5"), D(100), D("0.01"), T0)
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.remaining == D("1.5")
    o.fill(D("1.5"), D(104), D("0.02"), T0)
    assert o.status is OrderStatus.FILLED
    assert o.avg_fill_price == D(103) and o.fees == D("0.03")
    assert o.is_terminal


def test_overfill_is_refused_and_leaves_the_order_unchanged() -> None:
    o = order(qty="1")
    o.transition(OrderStatus.OPEN, T0)
    o.fill(D("0.6"), D(100), D(0), T0)
    with pytest.raises(OverFill):
        o.fill(D("0.5"), D(100), D(0), T0)
    assert o.filled_quantity == D("0.6") and o.status is OrderStatus.PARTIALLY_FILLED


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (OrderStatus.OPEN, OrderStatus.PENDING),
        (OrderStatus.OPEN, OrderStatus.REJECTED),
        (OrderStatus.FILLED, OrderStatus.CANCELLED),
        (OrderStatus.CANCELLED, OrderStatus.OPEN),
        (OrderStatus.REJECTED, OrderStatus.OPEN),
        (OrderStatus.EXPIRED, OrderStatus.CANCELLED),
        (OrderStatus.PENDING, OrderStatus.FILLED),
        (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ],
)
def test_illegal_transitions_raise(start: OrderStatus, target: OrderStatus) -> None:
    o = order()
    o.status = start
    with pytest.raises(IllegalTransition):
        o.transition(target, T0)
    assert o.status is start


def test_cannot_fill_a_pending_or_cancelled_order() -> None:
    o = order()
    with pytest.raises(IllegalTransition):
        o.fill(D(1), D(1), D(0), T0)
    o.transition(OrderStatus.CANCELLED, T0, "user")
    assert o.reject_reason == "user"
    with pytest.raises(IllegalTransition):
        o.fill(D(1), D(1), D(0), T0)


def test_resize_never_below_filled() -> None:
    o = order(qty="3")
    o.transition(OrderStatus.OPEN, T0)
    o.fill(D(2), D(1), D(0), T0)
    with pytest.raises(OverFill):
        o.resize(D(1), T0)
    o.resize(D(2), T0)
    assert o.status is OrderStatus.FILLED


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"qty": "0"}, "quantity"),
        ({"qty": "-1"}, "quantity"),
        ({"qty": "NaN"}, "quantity"),
        ({"type": "limit"}, "price"),
        ({"type": "limit", "price": "0"}, "price"),
        ({"type": "market", "price": "10"}, "market"),
        ({"type": "stop"}, "stop_price"),
        ({"type": "stop", "stop": "10", "price": "9"}, "stop_limit"),
        ({"type": "stop_limit", "stop": "10"}, "price"),
        ({"type": "take_profit"}, "stop_price"),
        ({"type": "limit", "price": "10", "stop": "9"}, "stop_price"),
        ({"type": "trailing_stop"}, "exactly one"),
        ({"type": "trailing_stop", "trail_amount": D(1), "trail_percent": D(1)}, "exactly one"),
        ({"type": "trailing_stop", "trail_percent": D(100)}, "trail_percent"),
        ({"type": "trailing_stop", "trail_amount": D(-1)}, "trail_amount"),
        ({"type": "limit", "price": "10", "trail_amount": D(1)}, "trailing_stop"),
        ({"symbol": ""}, "symbol"),
    ],
)
def test_validation_rejects_malformed_orders(kwargs: dict, reason: str) -> None:
    with pytest.raises(OrderRejected) as info:
        validate_order(order(**kwargs))
    assert reason in info.value.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"type": "limit", "price": "10"},
        {"type": "stop", "stop": "10"},
        {"type": "stop_limit", "stop": "10", "price": "9.5"},
        {"type": "take_profit", "stop": "10"},
        {"type": "take_profit", "stop": "10", "price": "10.1"},
        {"type": "trailing_stop", "trail_percent": D("1.5")},
        {"type": "trailing_stop", "trail_amount": D(5)},
    ],
)
def test_validation_accepts_well_formed_orders(kwargs: dict) -> None:
    validate_order(order(**kwargs))


def test_validation_refuses_orders_that_are_not_new() -> None:
    o = order()
    o.transition(OrderStatus.OPEN, T0)
    with pytest.raises(OrderRejected):
        validate_order(o)


def test_intent_builds_a_pending_order_with_its_own_or_given_id() -> None:
    ids = SequentialIds("x")
    intent = OrderIntent(account="a", symbol="S", side=OrderSide.BUY, quantity=D(1))
    o = intent.to_order(ids(), T0)
    assert o.client_order_id == "x00000001" and o.status is OrderStatus.PENDING
    named = OrderIntent(
        account="a", symbol="S", side=OrderSide.BUY, quantity=D(1), client_order_id="mine"
    )
    assert named.to_order(ids(), T0).client_order_id == "mine"


def test_fill_signed_quantity_and_notional() -> None:
    f = Fill("o", "S", OrderSide.SELL, D(2), D(3), D(0), Liquidity.TAKER, T0)
    assert f.signed_quantity == D(-2) and f.notional == D(6)


# ----------------------------------------------------------------- property: the state machine

_ALLOWED = {
    OrderStatus.PENDING: {OrderStatus.OPEN, OrderStatus.REJECTED, OrderStatus.CANCELLED,
                          OrderStatus.EXPIRED},
    OrderStatus.OPEN: {OrderStatus.CANCELLED, OrderStatus.EXPIRED},
    OrderStatus.PARTIALLY_FILLED: {OrderStatus.CANCELLED, OrderStatus.EXPIRED},
}  # fmt: skip

_steps = st.lists(
    st.one_of(
        st.sampled_from(list(OrderStatus)).map(lambda s: ("to", s)),
        st.integers(min_value=-1, max_value=6).map(lambda q: ("fill", q)),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(steps=_steps)
def test_no_illegal_sequence_is_accepted(steps: list[tuple[str, object]]) -> None:
    """Compare every step with an independent model of the legal moves."""
    o = order(qty="5")
    filled = 0
    for op, arg in steps:
        before = (o.status, o.filled_quantity)
        if op == "to":
            legal = arg in _ALLOWED.get(o.status, set())
            call = lambda arg=arg: o.transition(arg, T0)  # noqa: E731
        else:
            legal = (
                o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
                and arg > 0
                and filled + arg <= 5
            )
            call = lambda arg=arg: o.fill(D(arg), D(10), D(0), T0)  # noqa: E731
        if legal:
            call()
            if op == "fill":
                filled += arg
                expected = OrderStatus.FILLED if filled == 5 else OrderStatus.PARTIALLY_FILLED
                assert o.status is expected
            else:
                assert o.status is arg
        else:
            with pytest.raises((IllegalTransition, OverFill)):
                call()
            assert (o.status, o.filled_quantity) == before
        assert o.filled_quantity == filled <= o.quantity


def test_sequential_ids_count_from_their_start_and_pickle_where_they_stand() -> None:
    import pickle

    ids = SequentialIds("b")
    assert [ids(), ids()] == ["b00000001", "b00000002"]
    copy = pickle.loads(pickle.dumps(ids))
    assert copy() == ids() == "b00000003"  # each goes on from where the original stood
    assert SequentialIds("x%", 123456789)() == "x%123456789"  # a '%' in the prefix is literal
    assert SequentialIds()() == "o00000001"
