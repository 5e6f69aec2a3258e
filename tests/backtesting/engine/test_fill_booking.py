"""Booking of next-open fills: several held orders of one bar see each other's fills (the
buying-power cut and reduce-only caps), fees as the long formula gives them, the recorder."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

import pytest

from backtesting.engine.fills import BacktestVenue, FillConfig
from backtesting.engine.runner import _FillFlag, _Recorder
from tests.backtesting.engine.helpers import SYM, D, bar, minute
from trading.engine.money import BPS, FEE_STEP, fee_for
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent, OrderSide, OrderStatus, SequentialIds
from trading.engine.portfolio import Portfolio

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def stack(cash: str = "100000") -> tuple[OrderManager, Portfolio, _Recorder]:
    venue = BacktestVenue(FillConfig(taker_fee_bps=D(10)))
    pf = Portfolio("a", D(cash), ts=minute(0))
    oms = OrderManager(venue, portfolios=[pf], id_factory=SequentialIds())
    recorder = _Recorder()
    oms.add_listener(recorder)
    return oms, pf, recorder


def send(oms: OrderManager, side: OrderSide, qty: str, at: int, **kw: object):
    intent = OrderIntent(account="a", symbol=SYM, side=side, quantity=D(qty), **kw)  # type: ignore[arg-type]
    return oms.submit(intent, minute(at))


def test_two_buys_at_one_open_share_the_cash_the_first_fill_left() -> None:
    # Each buy alone fits the cash at the signal close (100); both fill at the next open, 104:
    # the first in full, the second only as far as the cash the first left pays (fee included).
    oms, pf, recorder = stack("1000")
    oms.on_bar(bar(0, 100, 100, 100, 100))
    first = send(oms, BUY, "6", 1)
    second = send(oms, BUY, "3.9", 1)
    assert first.quantity == D(6) and second.quantity == D("3.9")  # not cut at submission
    oms.on_bar(bar(1, 104, 104, 104, 104))
    assert first.status is OrderStatus.FILLED and first.filled_quantity == D(6)
    assert second.status is OrderStatus.CANCELLED
    assert second.reject_reason.startswith("buying power")
    assert D(0) < second.filled_quantity < D("3.9")
    assert pf.cash >= 0
    left = D(1000) - D(6) * D(104) - fee_for(D(6), D(104), D(10))
    assert pf.cash == left - second.filled_quantity * D(104) - recorder.fills[1].fee
    assert [f.order_id for f in recorder.fills] == [first.client_order_id, second.client_order_id]


def test_a_second_reduce_only_sell_at_one_open_sees_the_first_close_the_position() -> None:
    oms, pf, recorder = stack()
    oms.on_bar(bar(0, 100, 100, 100, 100))
    send(oms, BUY, "2", 1)
    oms.on_bar(bar(1, 100, 100, 100, 100))
    assert pf.quantity(SYM) == D(2)
    first = send(oms, SELL, "2", 2, reduce_only=True)
    second = send(oms, SELL, "2", 2, reduce_only=True)
    oms.on_bar(bar(2, 101, 101, 101, 101))
    assert first.status is OrderStatus.FILLED
    assert second.status is OrderStatus.CANCELLED and second.filled_quantity == 0
    assert second.reject_reason == "reduce_only: position is flat"
    assert pf.quantity(SYM) == 0  # not short: the second saw the first's fill
    assert len(recorder.fills) == 2


def test_fee_for_equals_the_long_formula() -> None:
    rng = random.Random(3)
    rates = [D(10), D("7.5"), D("0.1"), D(25), D("0.0001"), D(100), D("1E+1"), D("12.3456")]
    for _ in range(3000):
        qty = Decimal(rng.randrange(1, 10**12)).scaleb(-rng.randrange(0, 14))
        price = Decimal(rng.randrange(1, 10**9)).scaleb(-rng.randrange(0, 6))
        bps = rng.choice(rates)
        try:
            long_way = (qty * price * bps / BPS).quantize(FEE_STEP, rounding=ROUND_HALF_EVEN)
        except InvalidOperation:  # more digits than the precision holds: refused alike
            with pytest.raises(InvalidOperation):
                fee_for(qty, price, bps)
            continue
        got = fee_for(qty, price, bps)
        assert got == long_way and got.as_tuple() == long_way.as_tuple(), (qty, price, bps)
    # A rate finer than the precision (a bps of 30 digits) is not reused: the long way.
    fine = D("1.00000000000000000000000000001")
    qty, price = D("123456.789"), D("98765.4321")
    long_way = (qty * price * fine / BPS).quantize(FEE_STEP, rounding=ROUND_HALF_EVEN)
    assert fee_for(qty, price, fine).as_tuple() == long_way.as_tuple()
    # Products past the precision round alike (the digits differ only by trailing zeros).
    with localcontext() as ctx:
        ctx.prec = 12
        for bps in (D(10), D(20)):
            qty, price = D("1.23456789"), D("98765.4321")
            long_way = (qty * price * bps / BPS).quantize(D("1E-4"), rounding=ROUND_HALF_EVEN)
            rate = bps / BPS
            assert (qty * price * rate).quantize(D("1E-4"), ROUND_HALF_EVEN) == long_way


def test_recorders_take_fills_through_their_lists() -> None:
    recorder, flag = _Recorder(), _FillFlag()
    oms, _, _ = stack()
    oms.add_listener(recorder)
    oms.add_listener(flag)
    oms.on_bar(bar(0, 100, 100, 100, 100))
    order = send(oms, BUY, "1", 1)
    oms.on_bar(bar(1, 100, 100, 100, 100))
    assert [f.order_id for f in recorder.fills] == [order.client_order_id]
    assert flag.fills == recorder.fills
    assert recorder.orders == {order.client_order_id: order}
    assert recorder == _Recorder(recorder.seen, recorder.fills)  # on_fill/on_order not compared


def test_the_recorder_keeps_the_first_order_seen_for_an_id_in_first_seen_order() -> None:
    oms, _, recorder = stack()
    oms.on_bar(bar(0, 100, 100, 100, 100))
    first = send(oms, BUY, "1", 1, client_order_id="x")
    twin = send(oms, BUY, "2", 1, client_order_id="x")  # a duplicate id: rejected locally
    other = send(oms, SELL, "1", 1, client_order_id="y")
    oms.on_bar(bar(1, 100, 100, 100, 100))
    assert twin.status is OrderStatus.REJECTED and twin is not first
    assert list(recorder.orders.items()) == [("x", first), ("y", other)]
    assert list(recorder.seen) == [first, twin, other]
