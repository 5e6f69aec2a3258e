"""Buying power: no order fills beyond what the account can pay, fees included (default 1x)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trading.engine.helpers import SYM, T0, at, book, trade
from trading.engine.buying_power import (
    BuyingPowerPolicy,
    Exposure,
    Margin,
    affordable_quantity,
)
from trading.engine.oms import OrderManager
from trading.engine.orders import OrderIntent, OrderSide, OrderStatus, OrderType
from trading.engine.portfolio import Portfolio
from trading.engine.venue import PaperVenue, VenueConfig

D = Decimal
ETH = "ETH-USD"


def stack(
    cash: str = "10000",
    margin: Margin | None = Margin(),  # noqa: B008
    spread_bps: str = "0",
    fee_bps: str = "10",
) -> tuple[OrderManager, Portfolio]:
    fees = {"taker_fee_bps": D(fee_bps), "maker_fee_bps": D(fee_bps)}
    venue = PaperVenue(VenueConfig(synthetic_spread_bps=D(spread_bps), **fees))
    portfolio = Portfolio("acct", D(cash), ts=T0, margin=margin)
    return OrderManager(venue, portfolios=[portfolio]), portfolio


def test_affordable_quantity_pays_the_fee_from_cash() -> None:
    flat = Exposure(cash=D(10_000), held=D(0), other_net=D(0), other_gross=D(0))
    qty = affordable_quantity(flat, True, D(100), D(10), Margin())
    assert qty == D("99.90009990")  # floor(10 000 / (100 × 1.001)) to the satoshi
    cost = qty * 100 * (1 + D("0.001"))
    assert cost <= 10_000 < cost + D("0.00000001") * 100 * (1 + D("0.001"))


def test_a_market_buy_beyond_cash_is_reduced_at_submission() -> None:
    oms, portfolio = stack()
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("150"), at(1))
    assert placed.status is OrderStatus.FILLED
    assert placed.quantity == D("99.90009990")
    assert placed.metadata["requested_quantity"] == "150"
    assert placed.metadata["reduced_by"] == "buying_power"
    assert D(0) <= portfolio.cash < D(1)


def test_reject_policy_refuses_the_whole_order() -> None:
    oms, portfolio = stack(margin=Margin(policy=BuyingPowerPolicy.REJECT))
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("150"), at(1))
    assert placed.status is OrderStatus.REJECTED
    assert placed.reject_reason.startswith("buying power:")
    assert portfolio.cash == D(10_000) and not portfolio.quantity(SYM)


def test_a_fill_at_a_worse_price_than_the_reference_is_cut_at_the_fill() -> None:
    # The reference is the mid (100); the buy takes the ask 1 % higher: the guard cuts it there.
    oms, portfolio = stack(spread_bps="200", fee_bps="0")
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("100"), at(1))
    assert placed.status is OrderStatus.CANCELLED
    assert placed.reject_reason.startswith("buying power:")
    assert placed.filled_quantity == D("99.00990099")  # floor(10 000 / 101)
    assert D(0) <= portfolio.cash < D("0.000002")


def test_two_resting_buys_filled_by_one_print_share_the_cash() -> None:
    # Each is affordable alone; the second sees the cash the first used within the same print.
    oms, portfolio = stack(fee_bps="0")
    oms.on_trade(trade(100.0))
    first = oms.submit(_intent("60", type_="limit", price="99"), at(1))
    second = oms.submit(_intent("60", type_="limit", price="99"), at(2))
    oms.on_trade(trade(98.0, size=1000, t=3))
    assert first.status is OrderStatus.FILLED
    assert second.status is OrderStatus.CANCELLED
    assert second.filled_quantity == D("41.01010101")  # (10 000 − 60 × 99) / 99, floored
    assert portfolio.cash >= 0


def test_leverage_lets_gross_exposure_reach_its_multiple_of_equity() -> None:
    oms, portfolio = stack(margin=Margin(leverage=D(2)), fee_bps="0")
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("250"), at(1))
    assert placed.quantity == D(200)
    assert portfolio.cash == D(-10_000)  # borrowed, as configured
    assert portfolio.gross_exposure == 2 * portfolio.equity


def test_shorts_need_collateral_worth_their_value_at_1x() -> None:
    oms, portfolio = stack(fee_bps="0")
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("300", side="sell"), at(1))
    assert placed.quantity == D(100)
    assert portfolio.gross_exposure <= portfolio.equity


def test_reductions_pass_even_when_the_account_is_over_extended() -> None:
    oms, portfolio = stack(fee_bps="0")
    oms.on_trade(trade(100.0))
    oms.submit(_intent("100"), at(1))
    oms.on_trade(trade(50.0, t=2))  # equity halves; the position is now 100 % of it still
    placed = oms.submit(_intent("100", side="sell"), at(3))
    assert placed.status is OrderStatus.FILLED
    assert portfolio.quantity(SYM) == 0


def test_other_positions_count_against_the_same_equity() -> None:
    oms, portfolio = stack(fee_bps="0")
    oms.on_book(book([(99.0, 1000.0)], [(100.0, 1000.0)], symbol=ETH))
    oms.submit(_intent("60", symbol=ETH), at(1))
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("60"), at(2))
    assert placed.quantity == D(40)
    assert portfolio.cash == 0


def test_without_a_margin_the_engine_does_not_limit_fills() -> None:
    oms, portfolio = stack(margin=None, fee_bps="0")
    oms.on_trade(trade(100.0))
    oms.submit(_intent("150"), at(1))
    assert portfolio.cash == D(-5000)


def test_margin_refuses_leverage_below_one() -> None:
    with pytest.raises(ValueError, match="leverage"):
        Margin(leverage=D("0.5"))


def _intent(
    qty: str,
    side: str = "buy",
    type_: str = "market",
    price: str | None = None,
    symbol: str = SYM,
) -> OrderIntent:
    return OrderIntent(
        symbol=symbol,
        side=OrderSide(side),
        quantity=D(qty),
        account="acct",
        type=OrderType(type_),
        price=D(price) if price is not None else None,
    )


def test_the_oms_applies_an_account_margin_set_after_a_restore() -> None:
    oms, portfolio = stack(fee_bps="0")
    oms.restore("acct", cash=D(1000), now=at(0))
    oms.set_margin("acct", Margin(leverage=D(3)))
    oms.on_trade(trade(100.0))
    placed = oms.submit(_intent("50"), at(1))
    assert placed.quantity == D(30)
    assert portfolio.cash == D(-2000)


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell", "limit_buy", "limit_sell", "move"]),
        st.decimals(min_value=D("0.5"), max_value=D("400"), places=2),
        st.floats(min_value=50, max_value=150),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, spread=st.sampled_from(["0", "20", "300"]), fee=st.sampled_from(["0", "25"]))  # noqa: E501
def test_paper_trading_never_overdraws_cash_at_1x(actions, spread, fee) -> None:
    # Market and resting orders of random sizes against a moving synthetic book: whatever is
    # asked, cash stays >= 0 (a position can only lose the account more than it has once equity
    # itself is gone).
    oms, portfolio = stack(spread_bps=spread, fee_bps=fee)
    oms.on_trade(trade(100.0))
    for t, (kind, qty, price) in enumerate(actions, start=1):
        if kind == "move":
            oms.on_trade(trade(round(price, 2), size=1e9, t=t))
        else:
            side = "buy" if kind.endswith("buy") else "sell"
            limit = str(round(price, 2)) if kind.startswith("limit") else None
            type_ = "limit" if limit else "market"
            oms.submit(_intent(str(qty), side=side, type_=type_, price=limit), at(t))
        assert portfolio.cash >= 0 or portfolio.equity < 0


@settings(max_examples=300, deadline=None)
@given(
    cash_cents=st.integers(1, 10**9),
    held_units=st.integers(-(10**6), 10**6),
    qty_units=st.integers(1, 10**9),
    price_cents=st.integers(1, 10**7),
    lev=st.sampled_from(["1", "2"]),
    buy=st.booleans(),
    hair=st.integers(-3, 3),
)
def test_the_one_symbol_fast_path_judges_as_the_full_search(
    cash_cents, held_units, qty_units, price_cents, lev, buy, hair
) -> None:
    """``Portfolio.cap_order`` skips building the exposure when one symbol is held and the
    order fits; it must give exactly what ``cap_quantity`` gives, a hair from the limit too."""
    from trading.engine.buying_power import cap_quantity
    from trading.engine.orders import Fill, Liquidity

    price, fee = D(price_cents).scaleb(-2), D(10)
    portfolio = Portfolio("acct", D(cash_cents).scaleb(-2), ts=T0, margin=Margin(leverage=D(lev)))
    if held_units:
        side = OrderSide.BUY if held_units > 0 else OrderSide.SELL
        held = D(abs(held_units)).scaleb(-8)
        fill = Fill("o", SYM, side, held, price, D(0), Liquidity.TAKER, T0, "t", "acct")
        portfolio.apply_fill(fill)
    # Aim at the limit, then a few steps either side of it.
    exposure = portfolio.exposure(SYM, price)
    limit = affordable_quantity(exposure, buy, price, fee, portfolio.margin)
    qty = max(D("1E-8"), limit + D(hair).scaleb(-8)) if qty_units % 2 else D(qty_units).scaleb(-8)
    expected = cap_quantity(exposure, buy, qty, price, fee, portfolio.margin)
    assert portfolio.cap_order(SYM, buy, qty, price, fee) == expected
