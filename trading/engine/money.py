"""Decimal conversion at the engine boundary and the few exact money helpers built on it."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
HUNDRED = Decimal(100)


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """Convert a market-data number to Decimal via its shortest repr (never binary expansion)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # Decimal(0.1) would carry the float's binary noise; str() gives the intended digits.
        return Decimal(str(value))
    return Decimal(value)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (lot size or tick)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def fee_for(quantity: Decimal, price: Decimal, bps: Decimal) -> Decimal:
    """Return the fee on ``quantity`` at ``price`` charged at ``bps`` basis points (exact)."""
    return quantity * price * bps / BPS
