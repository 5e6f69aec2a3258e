"""Portfolio accounting: average cost, flips, marks, daily and peak equity, exact identities."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trading.engine.helpers import T0
from trading.engine.hooks import TradingMode
from trading.engine.orders import Fill, Liquidity, OrderSide
from trading.engine.portfolio import Portfolio, Position, PositionSnapshot

D = Decimal


def fill(
    side: str, qty: str, price: str, fee: str = "0", symbol: str = "BTC", t: float = 0
) -> Fill:
    return Fill(
        "o",
        symbol,
        OrderSide(side),
        D(qty),
        D(price),
        D(fee),
        Liquidity.TAKER,
        T0 + timedelta(seconds=t),
        account="a",
    )


def test_adding_re_averages_and_reducing_realises_against_the_average() -> None:
    p = Portfolio("a", D(10_000))
    p.apply_fill(fill("buy", "1", "100"))
    p.apply_fill(fill("buy", "3", "120", fee="1"))
    pos = p.position("BTC")
    assert pos.quantity == D(4) and pos.avg_price == D(115)
    assert p.apply_fill(fill("sell", "1", "130")) == D(15)
    assert pos.avg_price == D(115) and pos.quantity == D(3)
    assert p.cash == D(10_000) - D(100) - D(360) - D(1) + D(130)
    assert p.fees == D(1) and p.realized_pnl == D(15)


def test_short_positions_profit_when_price_falls() -> None:
    p = Portfolio("a", D(1000))
    p.apply_fill(fill("sell", "2", "50"))
    assert p.quantity("BTC") == D(-2) and p.cash == D(1100)
    p.mark("BTC", D(40))
    assert p.unrealized_pnl == D(20) and p.equity == D(1020)
    assert p.apply_fill(fill("buy", "2", "40")) == D(20)
    assert p.quantity("BTC") == 0 and p.equity == D(1020)


def test_flipping_closes_then_opens_at_the_fill_price() -> None:
    p = Portfolio("a", D(1000))
    p.apply_fill(fill("buy", "2", "100"))
    assert p.apply_fill(fill("sell", "5", "110")) == D(20)
    pos = p.position("BTC")
    assert pos.quantity == D(-3) and pos.avg_price == D(110)
    assert p.apply_fill(fill("buy", "1", "100")) == D(10)


def test_equity_exposure_and_views() -> None:
    p = Portfolio("a", D(1000))
    p.apply_fill(fill("buy", "2", "100"))
    p.apply_fill(fill("sell", "1", "50", symbol="ETH"))
    p.mark("BTC", D(110))
    p.mark("ETH", D(60))
    assert p.equity == p.cash + D(220) - D(60)
    assert p.gross_exposure == D(280) and p.net_exposure == D(160)
    view = p.view(TradingMode.REDUCING, open_orders=3)
    assert view.equity == p.equity and view.mode is TradingMode.REDUCING
    assert view.open_orders == 3 and view.gross_exposure == D(280)
    assert view.positions["ETH"].quantity == D(-1) and view.positions["BTC"].mark_price == D(110)
    p.apply_fill(fill("buy", "1", "60", symbol="ETH"))
    assert "ETH" not in p.view().positions  # flat positions are not shown to checks


def test_daily_pnl_resets_on_the_utc_day_roll_and_peak_tracks_the_high() -> None:
    p = Portfolio("a", D(1000), ts=T0)
    p.apply_fill(fill("buy", "1", "100"))
    p.mark("BTC", D(150), T0)
    assert p.daily_pnl == D(50) and p.peak_equity == D(1050)
    next_day = T0.replace(hour=0) + timedelta(days=1, minutes=1)
    p.mark("BTC", D(120), next_day)
    assert p.day_start_equity == D(1050)  # the equity at the roll, with yesterday's marks
    assert p.daily_pnl == D(-30) and p.peak_equity == D(1050) and p.drawdown == D(30)


def test_snapshot_and_restore_round_trip() -> None:
    p = Portfolio("a", D(1000), ts=T0)
    p.apply_fill(fill("buy", "2", "100", fee="0.5"))
    p.mark("BTC", D(105))
    snap = p.snapshot(T0)
    assert snap.equity == p.equity and snap.unrealized_pnl == D(10)
    q = Portfolio("a", D(0))
    q.restore(
        cash=snap.cash,
        positions=snap.positions,
        fees=snap.fees,
        peak_equity=snap.peak_equity,
        day_start_equity=snap.day_start_equity,
        ts=T0,
    )
    assert q.equity == p.equity and q.position("BTC").avg_price == D(100)
    assert q.apply_fill(fill("sell", "2", "110")) == D(20)


def test_restore_accepts_stored_positions() -> None:
    p = Portfolio("a", D(0))
    p.restore(cash=D(500), positions=[PositionSnapshot("ETH", D(-2), D(50), D(40))])
    assert p.equity == D(420) and p.unrealized_pnl == D(20)


# ----------------------------------------------------------------- properties

_fills = st.lists(
    st.tuples(
        st.sampled_from(["BTC", "ETH"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=50_000).map(lambda n: D(n) / 1000),  # 0.001 .. 50
        st.integers(min_value=1, max_value=10_000_000).map(lambda n: D(n) / 100),  # 0.01 .. 1e5
        st.integers(min_value=0, max_value=500).map(lambda n: D(n) / 100),
    ),
    max_size=40,
)


def _hand_average_cost(fills: list[tuple]) -> tuple[dict, Fraction]:
    """Average-cost P&L computed with exact rationals, independently of the engine."""
    qty: dict[str, Fraction] = {}
    avg: dict[str, Fraction] = {}
    realized = Fraction(0)
    for sym, side, q, px, _fee in fills:
        q, px = Fraction(q), Fraction(px)
        dq = q if side == "buy" else -q
        held = qty.get(sym, Fraction(0))
        if held == 0 or (held > 0) == (dq > 0):
            avg[sym] = (abs(held) * avg.get(sym, Fraction(0)) + q * px) / (abs(held) + q)
        else:
            closed = min(abs(held), q)
            direction = 1 if held > 0 else -1
            realized += (px - avg[sym]) * closed * direction
            if q > abs(held):
                avg[sym] = px
        qty[sym] = held + dq
    return qty, realized


@settings(max_examples=200, deadline=None)
@given(fills=_fills, marks=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6)))
def test_accounting_identities_hold_exactly(fills: list[tuple], marks: tuple[int, int]) -> None:
    start = D("100000")
    p = Portfolio("a", start)
    for i, (sym, side, q, px, fee) in enumerate(fills):
        p.apply_fill(
            Fill("o", sym, OrderSide(side), q, px, fee, Liquidity.TAKER, T0 + timedelta(seconds=i))
        )
    p.mark("BTC", D(marks[0]) / 100)
    p.mark("ETH", D(marks[1]) / 100)

    # Cash + position value is equity, exactly.
    values = sum((pos.quantity * pos.mark_price for pos in p.positions.values()), D(0))
    assert p.cash + values == p.equity
    # Position quantity is the sum of signed fills.
    for sym in ("BTC", "ETH"):
        signed = sum((q if s == "buy" else -q for y, s, q, _, _ in fills if y == sym), D(0))
        assert p.quantity(sym) == signed
    # Equity decomposes into deposits + realised + unrealised − fees, exactly.
    assert p.equity == start + p.realized_pnl + p.unrealized_pnl - p.fees
    assert p.fees == sum((f[4] for f in fills), D(0))
    # Realised P&L matches the independent average-cost computation (exact rationals).
    qty, realized = _hand_average_cost(fills)
    # Each partial close rounds the removed basis to 1e-12.
    assert abs(Fraction(p.realized_pnl) - realized) <= Fraction(len(fills), 10**12)
    if all(v == 0 for v in qty.values()):
        assert Fraction(p.realized_pnl) == realized  # flat: no rounding left anywhere


# Quantities and prices of 1 to 7 digits at 0 to 10 decimal places (trailing zeros kept).
_digits = st.integers(0, 10).flatmap(lambda e: st.integers(1, 10**7).map(lambda n: D(n).scaleb(-e)))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["buy", "sell", "close"]), _digits, _digits), max_size=30
    )
)
def test_fills_book_as_position_apply_gives_digit_for_digit(steps: list[tuple]) -> None:
    # apply_fill writes Position.apply's cases out: the same figures, exponents included.
    p, shadow = Portfolio("a", D(10**9)), Position("BTC")
    for i, (side, qty, price) in enumerate(steps):
        if side == "close":  # back to flat, whichever side is held
            if not shadow.quantity:
                continue
            side, qty = ("sell" if shadow.quantity > 0 else "buy"), abs(shadow.quantity)
        expected = shadow.apply(qty if side == "buy" else -qty, price)
        assert repr(p.apply_fill(fill(side, str(qty), str(price), t=i))) == repr(expected)
        pos = p.positions["BTC"]
        assert [repr(pos.quantity), repr(pos.cost_basis), repr(pos.realized_pnl)] == [
            repr(shadow.quantity),
            repr(shadow.cost_basis),
            repr(shadow.realized_pnl),
        ]


def test_equity_follows_every_write_at_once() -> None:
    # ``equity`` is kept between writes: each write must drop or redo it.
    p = Portfolio("a", D(1000))

    def check() -> None:
        values = sum((x.quantity * x.mark_price for x in p.positions.values()), D(0))
        assert p.equity == p.cash + values

    check()
    p.apply_fill(fill("buy", "2", "100", fee="1"))
    check()
    p.mark("BTC", D("110"))
    check()
    p.mark_at("BTC", 130.0, T0 + timedelta(minutes=1))
    check()
    p.cash = D(500)
    check()
    p.adjust_cash(D(250))
    check()
    p.apply_fill(fill("sell", "2", "90", fee="1", t=120))
    check()
    p.restore(cash=D(700), positions=[PositionSnapshot("ETH", D(3), D(10), D(12))])
    check()
    assert p.equity == D(736)
