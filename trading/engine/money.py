"""Decimal conversion at the engine boundary and the few exact money helpers built on it."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
HUNDRED = Decimal(100)
# Money is stored with 10 decimal places: a fee finer than that could not be stored as charged,
# and the stored fills would no longer explain the stored cash.
FEE_STEP = Decimal("1E-10")


# The last float converted and its Decimal: one bar's close is converted by the venue, the OMS's
# marks and the strategy in turn. Matched by identity (the very same float object), read and
# replaced as one tuple so concurrent callers never pair a value with another's Decimal.
_last_float: tuple[float, Decimal] = (float("nan"), Decimal("NaN"))


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """Convert a market-data number to Decimal via its shortest repr (never binary expansion)."""
    global _last_float
    cls = value.__class__
    if cls is float:
        last, converted = _last_float
        if value is last:
            return converted
        # Decimal(0.1) would carry the float's binary noise; str() gives the intended digits.
        converted = Decimal(repr(value))
        _last_float = (value, converted)  # type: ignore[assignment]
        return converted
    if cls is Decimal or isinstance(value, Decimal):
        return value  # type: ignore[return-value]
    if isinstance(value, float):  # numpy.float64: its repr() is not its digits, str() is
        return Decimal(str(value))
    return Decimal(value)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (lot size or tick)."""
    if step <= ZERO:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def fee_for(quantity: Decimal, price: Decimal, bps: Decimal) -> Decimal:
    """Return the fee on ``quantity`` at ``price`` at ``bps`` basis points, to 1e-10."""
    return (quantity * price * bps / BPS).quantize(FEE_STEP, rounding=ROUND_HALF_EVEN)
