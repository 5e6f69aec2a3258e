"""A strategy's order path written out (issue #14) gives exactly what the long way gives.

``StrategyContext`` builds plain market intents by position (``_market_intent``), sizes without
``floor_to_step``'s call and lets ``target_position``'s caller pass the position it has just
read; ``SignalStrategy.on_decision`` does. Each test compares with the long way, field by field
and digit for digit, and would fail if a shortcut went stale.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backtesting.engine.fills import BacktestVenue, FillConfig
from tests.backtesting.engine.helpers import SYM, bar, minute
from trading.engine.money import ZERO, floor_to_step, to_decimal
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent, OrderSide, OrderType, SequentialIds, TimeInForce
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.signal_strategy import SignalStrategy
from trading.engine.strategy import _market_intent

D = Decimal


def _context(cash: str = "100000"):
    venue = BacktestVenue(FillConfig())
    pf = Portfolio("a", D(cash), ts=minute(0))
    oms = OrderManager(venue, portfolios=[pf], id_factory=SequentialIds("o"))
    runner = StrategyRunner(oms, id_factory=SequentialIds("s"))
    oms.on_bar(bar(0, 100, 101, 99, 100))
    return runner, oms, pf


def _same(a: OrderIntent, b: OrderIntent) -> None:
    assert type(a) is type(b) is OrderIntent
    assert a == b
    for f in dataclasses.fields(OrderIntent):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y) and x == y and str(x) == str(y), f.name


def test_market_intent_is_the_intent_the_class_builds() -> None:
    q = D("0.00123400")
    built = _market_intent("a", SYM, OrderSide.SELL, q, True, "s1", "s1:flat", "o7")
    same = OrderIntent(
        account="a",
        symbol=SYM,
        side=OrderSide.SELL,
        quantity=q,
        reduce_only=True,
        strategy="s1",
        signal="s1:flat",
        client_order_id="o7",
    )
    _same(built, same)
    for f in dataclasses.fields(OrderIntent):  # the defaults are the very objects
        assert getattr(built, f.name) is getattr(same, f.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.symbol = "X"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("side", "options"),
    [
        ("buy", {}),
        ("sell", {}),
        ("buy", {"type": OrderType.LIMIT, "price": "99.5"}),
        ("sell", {"tif": TimeInForce.IOC}),
        ("buy", {"type": "market", "tif": "gtc"}),  # strings: converted, as before
        ("buy", {"signal": "mine", "reduce_only": True}),
        ("sell", {"metadata": {"k": 1}}),
    ],
)
def test_buy_and_sell_queue_the_intent_the_class_builds(side, options) -> None:
    runner, _, _ = _context()
    ctx = runner.add(SignalStrategy(), "a", strategy_id="s1")
    oid = getattr(ctx, side)(SYM, "0.5", **options)
    (intent,), _ = ctx.drain()
    expected = {**options}
    if "price" in expected:
        expected["price"] = D(expected["price"])
    for key, enum in (("type", OrderType), ("tif", TimeInForce)):
        if key in expected:
            expected[key] = enum(expected[key])
    _same(
        intent,
        OrderIntent(
            account="a",
            symbol=SYM,
            side=OrderSide(side),
            quantity=D("0.5"),
            strategy="s1",
            client_order_id=oid,
            **expected,
        ),
    )


@pytest.mark.parametrize(
    ("held", "target", "side", "qty", "reducing"),
    [
        ("0", "0.25", OrderSide.BUY, "0.25", False),
        ("2", "0", OrderSide.SELL, "2", True),
        ("2", "0.5", OrderSide.SELL, "1.5", True),
        ("2", "-1", OrderSide.SELL, "3", False),
        ("-2", "0", OrderSide.BUY, "2", True),
        ("-2", "1E+1", OrderSide.BUY, "12", False),
    ],
)
def test_target_position_queues_the_intent_the_class_builds(
    held, target, side, qty, reducing
) -> None:
    runner, oms, pf = _context()
    if held != "0":  # a position the long way: an order filled at the next open
        ctx0 = runner.add(SignalStrategy(), "a", strategy_id="setup")
        ctx0.target_position(SYM, D(held))
        runner.settle(minute(1))
        oms.on_bar(bar(1, 100, 101, 99, 100))
        assert pf.quantity(SYM) == D(held)
    ctx = runner.add(SignalStrategy(), "a", strategy_id="s1")
    oid = ctx.target_position(SYM, D(target), signal="s1:x")
    assert ctx.target_position(SYM, D(target)) is None  # the queued intent counts as done
    (intent,), _ = ctx.drain()
    _same(
        intent,
        OrderIntent(
            account="a",
            symbol=SYM,
            side=side,
            quantity=abs(D(target) - D(held)),
            reduce_only=reducing,
            strategy="s1",
            signal="s1:x",
            client_order_id=oid,
        ),
    )
    with pytest.raises(ValueError, match="target position"):
        ctx.target_position(SYM, "NaN")


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(D("0.01"), D("1e9"), places=2),
    st.sampled_from(["0.02", "0.1", "1", "0.333"]),
    st.sampled_from(["0.00000001", "0.001", "1", "5"]),
    st.floats(0.01, 1e7, allow_nan=False),
)
def test_size_for_floors_as_floor_to_step_does(cash, fraction, lot, price) -> None:
    runner, _, pf = _context(str(cash))
    ctx = runner.add(SignalStrategy(), "a", strategy_id="s1")
    px = to_decimal(price)
    quantity = ctx.size_for(SYM, D(fraction), D(lot), price)
    expected = max(ZERO, floor_to_step(pf.equity * D(fraction) / px, D(lot)))
    assert quantity == expected and str(quantity) == str(expected)
    assert ctx.size_for(SYM, D(fraction), D(lot), -price) is ZERO
    with pytest.raises(ValueError, match="step must be positive"):
        ctx.size_for(SYM, D(fraction), ZERO, price)


@settings(max_examples=400, deadline=None)
@given(
    st.decimals(D("-1e6"), D("1e12"), allow_nan=False, allow_infinity=False),
    st.decimals(D("1e-30"), D("1e3"), allow_nan=False, allow_infinity=False),
    st.decimals(D("1e-8"), D("1e7"), allow_nan=False, allow_infinity=False),
    st.sampled_from(["1E-8", "0.00000001", "0.001", "1", "1E+2", "5", "0.25", "0.010"]),
)
@example(D("3"), D("0.1234567890123456789012345678901"), D("7"), "1E-8")  # 31 digits: inexact
def test_an_entry_sized_per_lot_has_the_digits_of_the_long_way(
    equity, fraction, price, lot
) -> None:
    """``_per_lot`` (``fraction / lot``, for a power-of-ten lot and an exact quotient) sizes
    digit for digit as ``equity * fraction / price / lot`` does; other lots get None."""
    from trading.engine.signal_strategy import _per_lot

    lot = D(lot)
    per_lot = _per_lot(fraction, lot)
    if lot.as_tuple().digits != (1,):
        assert per_lot is None
    if per_lot is None or price <= ZERO:
        return
    slow, fast = equity * fraction / price / lot, equity * per_lot / price
    assert str(fast) == str(slow)  # before the floor too
    floor = ROUND_FLOOR
    assert str(fast.to_integral_value(floor) * lot) == str(slow.to_integral_value(floor) * lot)


class _Flip(SignalStrategy):
    abstract = True


class _Sizer:
    """A sizing policy: a third of what was asked, to the lot."""

    def lookback(self, strategy: str) -> int:
        return 0

    def size(self, *, strategy, equity, price, fraction, lot, closes):  # type: ignore[no-untyped-def]
        return floor_to_step(equity * fraction / price / 3, lot)


def _hold(runner, oms, pf, held: str, setup: str) -> None:  # type: ignore[no-untyped-def]
    """Fill orders of another strategy to hold ``held`` (after a round trip, if asked)."""
    other = runner.add(SignalStrategy(), "a", strategy_id="setup")
    if setup == "round trip":  # the position stays, at 0E-8
        other.target_position(SYM, D("0.01234567"))
        runner.settle(minute(1))
        oms.on_bar(bar(1, 100, 101, 99, 100))
        other.target_position(SYM, ZERO)
        runner.settle(minute(2))
        oms.on_bar(bar(2, 100, 101, 99, 100))
        assert str(pf.quantity(SYM)) == "0E-8"
    if held != "0":
        other.target_position(SYM, pf.quantity(SYM) + D(held))
        runner.settle(minute(3))
        oms.on_bar(bar(3, 100, 101, 99, 100))
        assert pf.quantity(SYM) == D(held)


@pytest.mark.parametrize(
    ("held", "choices", "setup"),
    [
        ("0", (math.nan, 1.0, math.nan), ""),  # flat -> long
        ("0", (math.nan, -1.0, math.nan), ""),  # flat -> short
        ("0.5", (math.nan, math.nan, 0.0), ""),  # long -> flat
        ("-0.5", (0.0, math.nan, math.nan), ""),  # short -> flat
        ("0.5", (math.nan, math.nan, -1.0), ""),  # long -> short: close, then enter
        ("-0.5", (1.0, math.nan, math.nan), ""),  # short -> long: close, then enter
        ("0.5", (math.nan, math.nan, math.nan), ""),  # nothing
        ("0.5", (math.nan, math.nan, 1.0), ""),  # already there
        ("0.5", (math.nan, 1.0, math.nan), ""),  # a flat-only rule while long: nothing
        ("0", (math.nan, 1.0, math.nan), "round trip"),  # flat at 0E-8 after a round trip
        ("0", (math.nan, -1.0, math.nan), "round trip"),
        ("0.00001234", (math.nan, math.nan, 0.0), "round trip"),  # long again: close
        ("0", (math.nan, 1.0, math.nan), "open"),  # an order open: it counts as held
        ("0", (math.nan, math.nan, 0.0), "open"),
        ("0.5", (math.nan, math.nan, 0.0), "open"),
        ("0", (math.nan, 1.0, math.nan), "queued"),  # an intent queued in this callback
        ("0", (math.nan, 1.0, math.nan), "sizer"),  # the account's sizing policy decides
        ("0", (math.nan, 1.0, math.nan), "no cash"),  # sized to nothing: the hint
        ("0", (math.nan, -1.0, math.nan), "no cash"),
        ("0", (math.nan, 1.0, math.nan), "no price"),  # a close of 0: the hint
        ("0", (math.nan, 1.0, math.nan), "all in"),  # an infinite fraction: refused
        ("0", (math.nan, 2.0, math.nan), ""),  # two units' worth (a table of its own)
        ("0", (math.nan, -2.0, math.nan), ""),
    ],
)
def test_on_decision_queues_what_the_long_way_queues(held, choices, setup) -> None:
    """``on_decision`` queues a close or an entry from flat itself when nothing is open or
    queued, and passes the position it read to ``_go`` otherwise; the long way (``_go`` as
    ``on_bar`` calls it) reads everything again. The same intents, digit for digit, the same
    hint and the same error."""
    outcomes = []
    for fast in (True, False):
        runner, oms, pf = _context("1" if setup == "no cash" else "100000")
        _hold(runner, oms, pf, held, setup)
        strategy = _Flip(
            fraction="inf" if setup == "all in" else 0.1, lot=1 if setup == "no cash" else 1e-8
        )
        ctx = runner.add(strategy, "a", strategy_id="s1")
        if setup == "open":  # sent, open until the next bar's open
            ctx.target_position(SYM, pf.quantity(SYM) + D("0.25"))
            runner.settle(minute(4))
            assert oms.open_orders("a", SYM)
        if setup == "queued":
            ctx.target_position(SYM, D("-0.125"))
        if setup == "sizer":
            ctx.sizer = _Sizer()  # type: ignore[assignment]
        b = bar(5, 100, 103, 99, 0.0 if setup == "no price" else 102.37)
        try:
            if fast:
                hint = strategy.on_decision(b, choices, ctx)
            else:
                held_sign = strategy._held(ctx, SYM)
                direction = choices[held_sign + 1]
                hint = None
                if direction == direction:
                    hint = strategy._go(ctx, b, int(direction), held_sign, None, {})
        except ValueError as exc:
            hint = repr(exc)
        outcomes.append((hint, ctx._outbox.count(ctx), ctx.drain()[0]))
    (hint, sent, fast_queue), (slow_hint, slow_sent, slow_queue) = outcomes
    assert hint == slow_hint and type(hint) is type(slow_hint)
    assert sent == slow_sent == len(fast_queue)
    if setup == "all in":
        assert "target position" in hint
    if setup in ("no cash", "no price"):
        assert hint is not None and not fast_queue
    assert len(fast_queue) == len(slow_queue)
    for a, b in zip(fast_queue, slow_queue, strict=True):
        _same(a, dataclasses.replace(b, client_order_id=a.client_order_id))


def test_on_decision_signals_follow_the_strategy_name() -> None:
    """The order signals ``on_decision`` keeps are made again when the class is renamed (as
    the loader names a user's class) after the strategy was made."""

    class Named(SignalStrategy):
        abstract = True
        name = "first"

    runner, oms, _ = _context()
    strategy = Named(fraction=0.1)
    ctx = runner.add(strategy, "a", strategy_id="s1")
    strategy.on_decision(bar(2, 100, 103, 99, 102.37), (math.nan, 1.0, math.nan), ctx)
    assert [i.signal for i in ctx._intents] == ["first:long"]
    runner.settle(minute(3))
    oms.on_bar(bar(3, 100, 101, 99, 100))
    Named.name = "second"
    strategy.on_decision(bar(4, 100, 103, 99, 101.0), (math.nan, math.nan, 0.0), ctx)
    assert [i.signal for i in ctx._intents] == ["second:flat"]


def test_sequential_ids_pickled_in_the_earlier_form_resume_where_they_stood() -> None:
    """Ids were a ``partial`` of the map's bound ``__next__``; such a pickle still loads."""
    import pickle
    from functools import partial
    from itertools import count

    from trading.engine.orders import _resume_ids

    earlier = partial.__new__(SequentialIds, map("q%08d".__mod__, count(5)).__next__)
    assert earlier() == "q00000005"
    restored = pickle.loads(pickle.dumps((_resume_ids, (earlier.func,))))
    resumed = restored[0](*restored[1])
    assert type(resumed) is SequentialIds
    assert [resumed(), resumed()] == ["q00000006", "q00000007"]
    ids = SequentialIds("b", 41)
    assert ids() == "b00000041"
    copy = pickle.loads(pickle.dumps(ids))
    assert [copy(), ids()] == ["b00000042", "b00000042"]


def test_open_orders_count_in_the_expected_position_and_only_in_their_symbol() -> None:
    """``_expected`` answers "nothing open" from the OMS's live open-order mapping."""
    runner, oms, _ = _context()
    ctx = runner.add(SignalStrategy(), "a", strategy_id="s1")
    assert ctx._open_book is oms.open_order_book("a")
    assert ctx.expected_position(SYM) == ZERO
    ctx.target_position(SYM, D("0.3"))
    runner.settle(minute(1))  # sent: open until the next bar's open
    assert oms.open_orders("a", SYM) and not ctx.has_pending
    assert ctx.expected_position(SYM) == D("0.3")
    assert ctx.expected_position("ETH-USD") == ZERO
    assert ctx.target_position(SYM, D("0.3")) is None
    oms.on_bar(bar(1, 100, 101, 99, 100))  # filled: nothing open any more
    assert not ctx._open_book and ctx.expected_position(SYM) == D("0.3") == ctx.position(SYM)
