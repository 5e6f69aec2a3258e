"""What every stored account must satisfy, whatever happened to the engine that wrote it."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Sum

from trading.choices import OPEN_ORDER_STATUSES
from trading.engine.orders import Fill as EngineFill
from trading.engine.orders import Liquidity, OrderSide, OrderStatus
from trading.engine.portfolio import Portfolio
from trading.models import Account

MONEY_SCALE = Decimal("1e-10")  # trading.models MONEY: NUMERIC(28, 10)
KNOWN_STATUSES = {status.value for status in OrderStatus}


def replay_fills(account: Account) -> Portfolio:
    """Return the portfolio the stored fills give, applied in the order they were stored."""
    portfolio = Portfolio(account.name, account.initial_capital)
    for f in account.fills.select_related("symbol").order_by("id"):
        portfolio.apply_fill(
            EngineFill(
                order_id=str(f.order_id),
                symbol=f.symbol.name,
                side=OrderSide(f.side),
                quantity=f.quantity,
                price=f.price,
                fee=f.fee,
                liquidity=Liquidity(f.liquidity),
                ts=f.ts,
                venue_trade_id=f.venue_trade_id,
            )
        )
    return portfolio


def assert_same_money(stored: Decimal, exact: Decimal, what: object) -> None:
    """Assert a stored amount equals the exact one, to the database's own precision.

    PostgreSQL's NUMERIC(28, 10) keeps every digit to the column's 10 decimal places, rounding
    half away from zero beyond them (a realised P&L on an average cost has more). SQLite keeps
    15 significant digits of a decimal (NUMERIC affinity stores a REAL), so an account of
    100,000 loses the 10th decimal place: there the amounts may differ by one unit in the 15th
    significant digit, never more.
    """
    if connection.vendor != "sqlite":
        assert stored == exact.quantize(MONEY_SCALE, rounding=ROUND_HALF_UP), (what, stored, exact)
        return
    if stored == exact:
        return
    unit = Decimal(1).scaleb(exact.adjusted() - 14)
    assert abs(stored - exact) <= unit, (what, stored, exact)


def assert_books_agree(account: Account) -> None:
    """Orders, fills, positions, cash, realised P&L and fees tell one consistent story."""
    account.refresh_from_db()
    ids = Counter(account.orders.values_list("client_order_id", flat=True))
    assert not [cid for cid, n in ids.items() if n > 1], "duplicate client order id"
    for order in account.orders.all():
        filled = order.fills.aggregate(q=Sum("quantity"))["q"] or Decimal(0)
        assert filled == order.filled_quantity, (order.client_order_id, order.status)
        assert order.filled_quantity <= order.quantity, ("overfill", order.client_order_id)
        assert order.status in KNOWN_STATUSES, order.status
        if order.status in OPEN_ORDER_STATUSES:
            assert order.filled_quantity < order.quantity, ("open but filled", order.pk)
    replay = replay_fills(account)
    assert_same_money(account.cash, replay.cash, "cash")
    stored = {p.symbol.name: p for p in account.positions.select_related("symbol")}
    for symbol, position in replay.positions.items():
        row = stored.get(symbol)
        assert row is not None, f"no stored position for {symbol}"
        assert row.quantity == position.quantity, (symbol, row.quantity, position.quantity)
        assert_same_money(row.realized_pnl, position.realized_pnl, (symbol, "realized"))
        assert_same_money(row.fees, position.fees, (symbol, "fees"))
    for symbol, row in stored.items():
        if symbol not in replay.positions:
            assert row.quantity == 0 and row.fees == 0, f"position {symbol} without fills"
