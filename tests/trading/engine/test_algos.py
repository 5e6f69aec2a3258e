"""TWAP / VWAP execution algorithms driven through the OMS and the paper venue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.trading.engine.helpers import SYM, T0, at, trade
from trading.engine.algos import ExecutionAlgo, TwapAlgo, VwapAlgo, volume_profile
from trading.engine.errors import AlgoConfigError
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderSide, OrderType, SequentialIds, TimeInForce
from trading.engine.portfolio import Portfolio
from trading.engine.venue import PaperVenue

D = Decimal


def drive(algo: ExecutionAlgo, prices: list[float], step: float, volume: float = 100.0) -> list:
    """Print one trade per step, then submit whatever the algo says is due."""
    oms = OrderManager(PaperVenue(), portfolios=[Portfolio("acct", D(10**7))])
    oms.add_listener(algo)
    sent = []
    for i, price in enumerate(prices):
        t = trade(price, volume, t=i * step)
        oms.on_trade(t)
        algo.observe_trade(t)
        for intent in algo.due(t.ts):
            sent.append(oms.submit(intent, t.ts))
    return sent


def twap(**kw: object) -> TwapAlgo:
    args = {
        "account": "acct",
        "symbol": SYM,
        "side": OrderSide.BUY,
        "quantity": D(10),
        "start": T0,
        "duration": timedelta(minutes=4),
        "slices": 4,
        "arrival_price": D(100),
        "lot": D("0.001"),
        "id_factory": SequentialIds("c"),
    }
    return TwapAlgo(**{**args, **kw})  # type: ignore[arg-type]


def test_twap_slices_evenly_on_schedule_and_reports_slippage() -> None:
    algo = twap()
    assert algo.times == [T0 + timedelta(minutes=i) for i in range(4)]
    sent = drive(algo, [100, 101, 102, 103, 104], step=60)
    assert [o.quantity for o in sent] == [D("2.5")] * 4
    assert all(o.type is OrderType.MARKET and o.tif is TimeInForce.IOC for o in sent)
    report = algo.report()
    assert report.done and report.filled == D(10) and report.progress == 1
    assert report.avg_price == D("101.5")
    assert report.slippage_bps == D(150)  # paid 1.5 % above arrival on a buy


def test_twap_sell_slippage_sign() -> None:
    algo = twap(side=OrderSide.SELL)
    drive(algo, [99, 99, 99, 99], step=60)
    assert algo.slippage_bps == D(100)  # sold 1 % below arrival: a cost


def test_missed_slices_are_caught_up_in_one_child() -> None:
    algo = twap()
    sent = drive(algo, [100, 100], step=150)  # t=0 and t=150s: slices 0, 1 and 2 reached
    assert [o.quantity for o in sent] == [D("2.5"), D(5)]
    assert algo.report().progress == D("0.75")


def test_participation_cap_limits_children_to_observed_volume() -> None:
    algo = twap(max_participation=D("0.1"))
    sent = drive(algo, [100] * 6, step=60, volume=10)  # 10 traded per minute
    assert [o.quantity for o in sent] == [D(1)] * 4  # 10 % of 10 each time
    report = algo.report()
    assert report.filled == D(4) and report.done and report.progress == D("0.4")


def test_vwap_follows_the_volume_profile() -> None:
    algo = VwapAlgo(
        profile=[1, 3, 0, 4],
        account="acct",
        symbol=SYM,
        side=OrderSide.BUY,
        quantity=D(8),
        start=T0,
        duration=timedelta(minutes=4),
        slices=4,
        arrival_price=D(100),
        lot=D(1),
    )
    sent = drive(algo, [100] * 4, step=60)
    assert [o.quantity for o in sent] == [D(1), D(3), D(4)]  # the empty slice sends nothing
    assert algo.filled == D(8) and algo.slippage_bps == 0


def test_children_that_fail_are_released_back_to_the_schedule() -> None:
    algo = twap(quantity=D(4), slices=2, duration=timedelta(minutes=1))
    oms = OrderManager(PaperVenue(), portfolios=[Portfolio("acct", D(10**6))])
    oms.add_listener(algo)
    first = oms.submit(algo.due(T0)[0], T0)  # no market data yet: cancelled unfilled
    assert first.filled_quantity == 0 and algo.working == 0
    oms.on_trade(trade(100.0, 50))
    second = oms.submit(algo.due(at(60))[0], at(60))
    assert second.quantity == D(4) and algo.filled == D(4)


def test_volume_profile_buckets_history() -> None:
    assert volume_profile([1, 2, 3, 4, 5, 6], 3) == [D(3), D(7), D(11)]
    with pytest.raises(AlgoConfigError):
        volume_profile([1], 2)


@pytest.mark.parametrize(
    "kw",
    [
        {"slices": 0},
        {"quantity": D(0)},
        {"max_participation": D(2)},
        {"arrival_price": D(0)},
    ],
)
def test_bad_configs_are_refused(kw: dict) -> None:
    with pytest.raises(AlgoConfigError):
        twap(**kw)
