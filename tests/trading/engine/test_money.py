"""Decimal conversion at the engine boundary."""

from __future__ import annotations

import threading
from decimal import Decimal

import numpy as np

from trading.engine.money import fee_for, floor_to_step, to_decimal, whole_cents


def test_floats_convert_through_their_shortest_digits() -> None:
    assert str(to_decimal(0.1)) == "0.1"  # not 0.1000000000000000055511151231257827...
    assert str(to_decimal(43012.57)) == "43012.57"
    assert str(to_decimal(-0.0)) == "-0.0"
    assert to_decimal(float("inf")) == Decimal("Infinity")
    assert str(to_decimal(np.float64(2.5))) == "2.5"  # a float subclass whose repr differs
    assert to_decimal(3) == Decimal(3) and str(to_decimal("1.20")) == "1.20"
    d = Decimal("7.5")
    assert to_decimal(d) is d


def test_the_last_float_is_reused_only_for_that_very_object() -> None:
    price = 101.25
    first = to_decimal(price)
    assert to_decimal(price) is first  # the same float object: the same Decimal
    other = float("101.26")
    assert to_decimal(other) == Decimal("101.26")
    # Equal values that are different objects still convert on their own.
    assert to_decimal(float("101.25")) == first
    assert str(to_decimal(float("1e-7"))) == "1E-7"


def test_concurrent_conversions_never_mix_values() -> None:
    values = [float(i) + 0.25 for i in range(2000)]
    errors = []

    def work(offset: int) -> None:
        for k in range(20_000):
            v = values[(k * 7 + offset) % len(values)]
            if to_decimal(v) != Decimal(repr(v)):
                errors.append(v)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_money_helpers_are_exact() -> None:
    assert floor_to_step(Decimal("1.23456789"), Decimal("0.001")) == Decimal("1.234")
    assert fee_for(Decimal("2"), Decimal("100.5"), Decimal(10)) == Decimal("0.201")


def _same_as_repr(value: float) -> bool:
    """Return True if ``to_decimal`` gives exactly ``Decimal(repr(value))`` (digits, exponent),
    and ``whole_cents`` too where it gives a Decimal."""
    exact = Decimal(repr(value)).as_tuple()
    cents = whole_cents(value)
    return to_decimal(value).as_tuple() == exact and (cents is None or cents.as_tuple() == exact)


def test_whole_cents_convert_to_the_very_decimal_of_their_repr() -> None:
    # The whole-cents path (no repr) must give the digits and exponent repr gives: "5.0" keeps
    # one zero, "0.5" and "30123.5" their tenths, and prices that are not whole cents, tiny or
    # huge values (exponent notation) take the repr path.
    edges = [
        0.01,
        0.05,
        0.1,
        0.5,
        1.0,
        5.0,
        10.0,
        30123.45,
        30123.5,
        30123.0,
        0.015,
        2.675,
        1.005,
        0.1 + 0.2,
        1 / 3,
        0.0099,
        9999999999999.99,
        1e13,
        1e13 - 0.01,
        123456789012.34,
        1e16,
        1e-5,
        -30123.45,
        0.0,
        -0.0,
    ]
    assert all(_same_as_repr(float(v)) for v in edges)
    rng = np.random.default_rng(11)
    cents = np.round(rng.uniform(0, 1e6, 20_000), 2).tolist()
    mixed = (rng.uniform(0, 100, 5_000) * 10.0 ** rng.integers(-6, 14, 5_000)).tolist()
    rounded = [round(v, int(d)) for v, d in zip(mixed, rng.integers(0, 4, 5_000), strict=True)]
    bad = [v for v in cents + mixed + rounded if not _same_as_repr(v)]
    assert bad == []
    assert all(whole_cents(v) is not None for v in cents if v >= 0.01)
    assert whole_cents(0.015) is None and whole_cents(1e13) is None and whole_cents(-1.0) is None
