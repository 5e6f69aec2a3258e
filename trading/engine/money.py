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
SIZE_STEP = Decimal("1E-10")  # the finest quantity stored (10 decimal places)


# Whole cents, converted without ``repr``'s shortest-digits search (~4k of ~6k instructions):
# if ``n / 100.0 == value``, the decimal n/100 converts to ``value`` (the division is correctly
# rounded) and, with under 16 significant digits (``value < 1e13``), it is the only decimal of
# so few digits that does (doubles hold 15 decimal digits exactly). ``repr`` gives the shortest
# decimal that converts back, so it is n/100 with its trailing zeros dropped but one
# (``repr(5.0) == "5.0"``), in plain notation (``repr`` uses exponents below 1e-4 and from
# 1e16): ``n × 0.01``, or ``n/10 × 0.1`` when n ends in 0, the same digits and exponent.
# Otherwise ``repr`` decides. tests/trading/engine/test_money.py compares the two.
_CENT, _DIME = Decimal("0.01"), Decimal("0.1")

# The last float converted and its Decimal: one bar's close is converted by the venue, the OMS's
# marks and the strategy in turn. Matched by identity (the very same float object), read and
# replaced as one tuple so concurrent callers never pair a value with another's Decimal.
# ``BacktestVenue.reference_price`` reads it in place too: keep it one (float, Decimal) tuple.
_last_float: tuple[float, Decimal] = (float("nan"), Decimal("NaN"))


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """Convert a market-data number to Decimal via its shortest repr (never binary expansion)."""
    global _last_float
    cls = value.__class__
    if cls is float:
        last, converted = _last_float
        if value is last:
            return converted
        # Decimal(0.1) would carry the float's binary noise; repr() gives the intended digits.
        # A price, most often in whole cents: ``whole_cents``, written out.
        if 0.01 <= value < 1e13 and (n := int(value * 100.0 + 0.5)) / 100.0 == value:
            converted = n * _CENT if n % 10 else n // 10 * _DIME
        else:
            converted = Decimal(repr(value))
        _last_float = (value, converted)  # type: ignore[assignment]
        return converted
    if cls is Decimal or isinstance(value, Decimal):
        return value  # type: ignore[return-value]
    if isinstance(value, float):  # numpy.float64: its repr() is not its digits, str() is
        return Decimal(str(value))
    return Decimal(value)


def whole_cents(value: float) -> Decimal | None:
    """Return ``Decimal(repr(value))`` if ``value`` is a whole number of cents from 0.01 to
    1e13 (see above), else None; without ``repr``."""
    if 0.01 <= value < 1e13:
        n = int(value * 100.0 + 0.5)
        if n / 100.0 == value:
            return n * _CENT if n % 10 else n // 10 * _DIME
    return None


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (lot size or tick)."""
    if step <= ZERO:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


# The fee rate ``bps / BPS`` of the last ``bps`` object seen (a venue passes its config's one
# object on every fill): matched by identity, read and replaced as one tuple (threads).
# ``venue.book_fill`` and ``BacktestVenue._fill_at_open`` read it in place too: keep its shape.
_last_rate: tuple[Decimal, Decimal] = (Decimal("NaN"), Decimal("NaN"))


def fee_for(quantity: Decimal, price: Decimal, bps: Decimal) -> Decimal:
    """Return the fee on ``quantity`` at ``price`` at ``bps`` basis points, to 1e-10.

    ``quantity × price × bps / BPS``, computed as ``quantity × price × (bps / BPS)`` when that
    rate is exact (checked once per ``bps``): the same value (the product's digits are the same
    but for trailing zeros, so any rounding to the context's precision drops the same digits),
    one division fewer a fill. The rounding mode is passed by position (half the cost).
    """
    known, rate = _last_rate
    if bps is not known:
        rate = exact_rate(bps)
        if rate is None:  # not exact (a rate finer than the precision): the long way
            return (quantity * price * bps / BPS).quantize(FEE_STEP, ROUND_HALF_EVEN)
    return (quantity * price * rate).quantize(FEE_STEP, ROUND_HALF_EVEN)


def exact_rate(bps: Decimal) -> Decimal | None:
    """Return ``bps / BPS`` if it is exact (then ``x × bps / BPS == x × rate`` for any ``x``:
    see ``fee_for``), else None; remembered for the last ``bps`` object (by identity)."""
    global _last_rate
    known, rate = _last_rate
    if bps is known:
        return rate
    rate = bps / BPS
    if rate * BPS != bps:
        return None
    _last_rate = (bps, rate)
    return rate
