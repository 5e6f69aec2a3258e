"""OrderManager: hook decisions, listeners, portfolio updates, modes, brackets, recovery."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.trading.engine.helpers import SYM, T0, at, book, order, trade
from trading.engine.errors import UnknownAccount, UnknownOrder
from trading.engine.hooks import (
    AccountView,
    Decision,
    HaltAwareHook,
    OrderProposal,
    PreTradeResult,
    TradingMode,
)
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Order, OrderIntent, OrderSide, OrderStatus, OrderType
from trading.engine.portfolio import Portfolio, PositionSnapshot
from trading.engine.venue import PaperVenue, VenueConfig

D = Decimal


class Recorder:
    """Listener that records what the OMS reports (a stand-in for the persistence sink)."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, OrderStatus]] = []
        self.fills: list[Fill] = []

    def on_order(self, order: Order) -> None:
        self.orders.append((order.client_order_id, order.status))

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


class CapHook:
    """Reduces orders above ``cap`` and rejects sells (a scripted risk check)."""

    def __init__(self, cap: Decimal) -> None:
        self.cap = cap
        self.seen: list[tuple[OrderProposal, AccountView]] = []

    def check(self, order: OrderProposal, account: AccountView) -> PreTradeResult:
        self.seen.append((order, account))
        if order.side == "sell":
            return PreTradeResult(Decision.REJECT, D(0), "no selling today", "test")
        if order.quantity > self.cap:
            return PreTradeResult(Decision.REDUCE, self.cap, "too big", "max_order")
        return PreTradeResult(Decision.APPROVE, order.quantity)


def make(hook: object = None, cash: str = "100000") -> tuple[OrderManager, Portfolio, Recorder]:
    venue = PaperVenue(VenueConfig(taker_fee_bps=D(10)))
    portfolio = Portfolio("acct", D(cash), ts=T0)
    rec = Recorder()
    oms = OrderManager(venue, hook=hook, listeners=[rec], portfolios=[portfolio])
    oms.on_book(book([(99.0, 5.0)], [(101.0, 5.0)]))
    return oms, portfolio, rec


def intent(side: str = "buy", qty: str = "1", **kw: object) -> OrderIntent:
    return OrderIntent(account="acct", symbol=SYM, side=OrderSide(side), quantity=D(qty), **kw)


def test_market_order_updates_portfolio_and_notifies_listeners() -> None:
    oms, pf, rec = make()
    o = oms.submit(intent(qty="2"), T0)
    assert o.status is OrderStatus.FILLED
    assert pf.quantity(SYM) == D(2) and pf.cash == D(100000) - D(202) - D("0.202")
    assert [f.quantity for f in rec.fills] == [D(2)]
    assert rec.orders == [(o.client_order_id, OrderStatus.FILLED)]
    assert oms.open_orders() == []


class FillsOnly:
    """Listener whose ``on_order`` does nothing (as ``StrategyRunner``'s): it is not called."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def on_order(self, order: Order) -> None:
        """Ignore order changes."""


def test_listeners_changed_in_place_are_heard_and_methods_that_do_nothing_are_skipped() -> None:
    oms, _, rec = make()
    late, quiet = Recorder(), FillsOnly()
    oms.listeners.append(late)  # the public list, changed in place (the backtest runner does)
    oms.listeners.append(quiet)
    first = oms.submit(intent(), T0)
    assert late.orders == rec.orders == [(first.client_order_id, OrderStatus.FILLED)]
    assert [f.order_id for f in quiet.fills] == [first.client_order_id]
    oms.listeners.remove(late)
    second = oms.submit(intent(), T0)
    assert late.orders == [(first.client_order_id, OrderStatus.FILLED)]  # no longer told
    assert rec.orders[-1] == (second.client_order_id, OrderStatus.FILLED) and len(quiet.fills) == 2
    calls = oms._listener_calls()
    assert calls[0] == (rec.on_fill, rec.on_order, None)
    assert calls[1] == (quiet.on_fill, None, None)


class Gated(Recorder):
    """Listener with ``listening``: told nothing while that collection is empty."""

    def __init__(self) -> None:
        super().__init__()
        self.listening: dict[str, int] = {}


def test_a_listener_is_told_nothing_while_its_listening_collection_is_empty() -> None:
    oms, _, rec = make()
    gated = Gated()
    oms.add_listener(gated)
    first = oms.submit(intent(), T0)
    assert gated.orders == [] and gated.fills == [] and len(rec.fills) == 1
    gated.listening["parent"] = 1  # the same collection, now holding something
    second = oms.submit(intent(), T0)
    assert gated.orders == [(second.client_order_id, OrderStatus.FILLED)]
    assert [f.order_id for f in gated.fills] == [second.client_order_id] != [first.client_order_id]


def test_hook_sees_the_proposal_and_account_and_can_reduce() -> None:
    hook = CapHook(D("0.5"))
    oms, pf, _ = make(hook)
    o = oms.submit(intent(qty="2"), T0)
    proposal, view = hook.seen[0]
    assert proposal.reference_price == D(100) and proposal.quantity == D(2)
    assert view.cash == D(100000) and view.mode is TradingMode.ACTIVE
    assert o.quantity == D("0.5") and o.status is OrderStatus.FILLED
    assert o.metadata["requested_quantity"] == "2" and pf.quantity(SYM) == D("0.5")


def test_hook_rejection_marks_the_order_rejected_with_the_reason() -> None:
    oms, pf, rec = make(CapHook(D(10)))
    o = oms.submit(intent("sell"), T0)
    assert o.status is OrderStatus.REJECTED and o.reject_reason == "no selling today"
    assert rec.orders == [(o.client_order_id, OrderStatus.REJECTED)]
    assert pf.quantity(SYM) == 0


def test_invalid_intent_is_rejected_before_the_hook() -> None:
    hook = CapHook(D(10))
    oms, _, _ = make(hook)
    o = oms.submit(intent(type=OrderType.LIMIT), T0)
    assert o.status is OrderStatus.REJECTED and hook.seen == []


def test_no_reference_price_rejects() -> None:
    oms, _, _ = make()
    o = oms.submit(
        OrderIntent(account="acct", symbol="NEW-USD", side=OrderSide.BUY, quantity=D(1)), T0
    )
    assert o.status is OrderStatus.REJECTED and "reference price" in o.reject_reason


def test_unknown_account_raises() -> None:
    oms, _, _ = make()
    with pytest.raises(UnknownAccount):
        oms.submit(OrderIntent(account="nobody", symbol=SYM, side=OrderSide.BUY, quantity=D(1)), T0)


def test_resting_order_is_tracked_until_filled_by_market_data() -> None:
    oms, pf, rec = make()
    o = oms.submit(intent(qty="1", type=OrderType.LIMIT, price=D(95)), T0)
    assert oms.open_orders("acct") == [o] and oms.get(o.client_order_id) is o
    oms.on_trade(trade(94.0, 3, t=1))
    assert o.status is OrderStatus.FILLED and oms.open_orders() == []
    assert pf.quantity(SYM) == D(1)
    assert pf.position(SYM).mark_price == D(94)  # marked by the trade


def test_cancel_and_cancel_all() -> None:
    oms, _, rec = make()
    a = oms.submit(intent(type=OrderType.LIMIT, price=D(90)), T0)
    b = oms.submit(intent(type=OrderType.LIMIT, price=D(91)), T0)
    oms.cancel(a.client_order_id, at(1))
    assert a.status is OrderStatus.CANCELLED and oms.open_orders() == [b]
    with pytest.raises(UnknownOrder):
        oms.cancel(a.client_order_id, at(2))
    assert oms.cancel_all("acct", at(2)) == [b] and b.status is OrderStatus.CANCELLED


def test_halting_cancels_open_orders_and_blocks_new_ones() -> None:
    oms, pf, _ = make(HaltAwareHook())
    oms.submit(intent(qty="1"), T0)
    resting = oms.submit(intent(type=OrderType.LIMIT, price=D(90)), T0)
    cancelled = oms.set_mode("acct", TradingMode.HALTED, at(1))
    assert cancelled == [resting] and oms.mode("acct") is TradingMode.HALTED
    assert oms.submit(intent(), at(2)).status is OrderStatus.REJECTED
    flatten = oms.submit(intent("sell", reduce_only=True), at(3))
    assert flatten.status is OrderStatus.FILLED and pf.quantity(SYM) == 0


def test_bracket_intent_creates_protective_children() -> None:
    oms, pf, rec = make()
    entry = oms.submit(intent(qty="1", stop_loss=D(95), take_profit=D(110)), T0)
    assert entry.status is OrderStatus.FILLED
    children = oms.open_orders("acct")
    assert sorted(c.signal for c in children) == ["stop_loss", "take_profit"]
    assert all(c.reduce_only and c.parent_id == entry.client_order_id for c in children)
    oms.on_trade(trade(94.0, 5, t=1))
    assert pf.quantity(SYM) == 0 and oms.open_orders() == []


def test_bracket_with_misordered_prices_is_rejected() -> None:
    oms, _, rec = make()
    entry = oms.submit(intent(qty="1", stop_loss=D(110), take_profit=D(95)), T0)
    assert entry.status is OrderStatus.REJECTED and "bracket" in entry.reject_reason
    assert len(rec.orders) == 3  # the entry and both children are reported


def test_restore_reloads_cash_positions_and_open_orders() -> None:
    venue = PaperVenue()
    oms = OrderManager(venue)
    working = order("sell", "1", "limit", price="120", oid="w1")
    working.status = OrderStatus.PARTIALLY_FILLED
    working.filled_quantity = D("0.25")
    stop = order("sell", "1", "stop", stop="90", oid="s1")
    stop.status = OrderStatus.OPEN
    oms.restore(
        "acct",
        cash=D(5000),
        positions=[PositionSnapshot(SYM, D("1.75"), D(100), D(100))],
        open_orders=[working, stop],
        now=T0,
    )
    pf = oms.portfolio("acct")
    assert pf.equity == D(5175) and len(oms.open_orders("acct")) == 2
    oms.on_trade(trade(121.0, 5, t=1))
    assert working.status is OrderStatus.FILLED and pf.quantity(SYM) == D(1)
    assert pf.realized_pnl == D("0.75") * D(20)
    oms.on_trade(trade(89.0, 5, t=2))
    assert stop.status is OrderStatus.FILLED and pf.quantity(SYM) == 0


def test_daily_roll_follows_event_time() -> None:
    oms, pf, _ = make()
    oms.submit(intent(qty="1"), T0)
    oms.on_trade(trade(110.0, t=1))
    equity_before_midnight = pf.equity
    oms.on_trade(trade(120.0, t=13 * 3600))  # 01:00 next day
    assert pf.day_start_equity == equity_before_midnight
    assert pf.daily_pnl == D(10)


class _Units(Decimal):
    """A Decimal subclass (``validate_order`` takes any Decimal)."""


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({}, None),
        ({"quantity": _Units(1)}, None),
        ({"quantity": 1}, "quantity must be a positive Decimal"),
        ({"quantity": 1.0}, "quantity must be a positive Decimal"),
        ({"quantity": D(0)}, "quantity must be a positive Decimal"),
        ({"quantity": D(-1)}, "quantity must be a positive Decimal"),
        ({"quantity": D("NaN")}, "quantity must be a positive Decimal"),
        ({"quantity": D("Infinity")}, "quantity must be a positive Decimal"),
        ({"symbol": ""}, "symbol is required"),
        ({"price": D(100)}, "market orders take no price or stop price"),
        ({"stop_price": D(100)}, "market orders take no price or stop price"),
        ({"trail_amount": D(1)}, "trail_amount/trail_percent apply to trailing_stop orders only"),
        ({"trail_percent": D(1)}, "trail_amount/trail_percent apply to trailing_stop orders only"),
        ({"client_order_id": "taken"}, "duplicate client_order_id 'taken'"),
        ({"quantity": D(0), "client_order_id": "taken"}, "quantity must be a positive Decimal"),
    ],
)
def test_a_market_order_is_checked_as_validate_order_then_the_id_check_would(
    kw: dict[str, object], reason: str | None
) -> None:
    """The OMS sees a plain market order's checks inline (no call) and sends any other through
    ``validate_order`` and the duplicate-id check: the same verdicts and messages, in order."""
    oms, _, rec = make()
    resting = intent("buy", "1", client_order_id="taken", type=OrderType.LIMIT, price=D(1))
    taken = oms.submit(resting, T0)
    fields = {"account": "acct", "symbol": SYM, "side": OrderSide.BUY, "quantity": D(1), **kw}
    placed = oms.submit(OrderIntent(**fields), T0)  # type: ignore[arg-type]
    if reason is None:
        assert placed.status is OrderStatus.FILLED and placed.quantity == 1
    else:
        assert placed.status is OrderStatus.REJECTED and placed.reject_reason == reason
        assert rec.orders[-1] == (placed.client_order_id, OrderStatus.REJECTED)
    assert oms.get("taken") is taken and oms.open_orders() == [taken]  # the resting order
