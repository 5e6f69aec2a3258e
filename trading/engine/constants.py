"""Constants of the trading engine."""

from __future__ import annotations

from decimal import Decimal

DEFAULT_LOT = Decimal("0.00000001")  # 1 satoshi: the finest quantity step strategies size to
# Partial closes split the cost basis by a ratio; the removed part is rounded to this quantum
# (quote currency) so balances keep few enough digits for exact Decimal sums up to ~1e15.
BASIS_QUANTUM = Decimal("1e-12")
