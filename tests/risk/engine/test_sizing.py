"""Position sizing: closed-form Kelly, fixed fractional and volatility targeting."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.engine.errors import SizingError
from risk.engine.sizing import (
    FixedFractionalSizer,
    KellySizer,
    LotRules,
    VolatilityTargetSizer,
    kelly_fraction,
    kelly_fraction_from_moments,
    realised_volatility,
    round_down_to_lot,
    scale_kelly,
)


@pytest.mark.parametrize(
    ("qty", "lot", "expected"),
    [
        ("1.23456", "0.01", "1.23"),
        ("0.999", "0.001", "0.999"),
        ("5", "2", "4"),
        ("0.0049", "0.01", "0"),
        ("-1", "0.01", "0"),
        ("123456789012345678901234567.9", "0.00000001", "123456789012345678901234567.9"),
    ],
)
def test_round_down_to_lot(qty: str, lot: str, expected: str) -> None:
    assert round_down_to_lot(D(qty), D(lot)) == D(expected)


def test_round_down_rejects_non_positive_lot() -> None:
    with pytest.raises(SizingError):
        round_down_to_lot(D("1"), D("0"))


@pytest.mark.parametrize(
    ("p", "b", "expected"),
    [
        ("0.6", "1", "0.2"),
        ("0.5", "2", "0.25"),
        ("0.4", "1", "-0.2"),
        ("1", "3", "1"),
        ("0", "4", "-0.25"),
        (0.55, 1.5, "0.25"),  # floats go through str: 0.55 - 0.45 / 1.5 = 0.25
    ],
)
def test_kelly_fraction_win_rate(p: object, b: object, expected: str) -> None:
    assert kelly_fraction(p, b) == D(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(("p", "b"), [("1.1", "1"), ("-0.1", "1"), ("0.5", "0"), ("nan", "1")])
def test_kelly_fraction_rejects_bad_inputs(p: str, b: str) -> None:
    with pytest.raises(SizingError):
        kelly_fraction(D(p), D(b))


@pytest.mark.parametrize(
    ("mu", "var", "expected"),
    [("0.01", "0.04", "0.25"), (0.0005, 0.0004, "1.25"), ("-0.01", "0.01", "-1")],
)
def test_kelly_fraction_from_moments(mu: object, var: object, expected: str) -> None:
    assert kelly_fraction_from_moments(mu, var) == D(expected)  # type: ignore[arg-type]


def test_kelly_from_moments_rejects_zero_variance() -> None:
    with pytest.raises(SizingError):
        kelly_fraction_from_moments("0.01", "0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("full", "mult", "cap", "expected"),
    [("0.4", "0.5", "0.25", "0.2"), ("0.8", "0.5", "0.25", "0.25"), ("-0.2", "1", "1", "0")],
)
def test_scale_kelly(full: str, mult: str, cap: str, expected: str) -> None:
    assert scale_kelly(D(full), D(mult), D(cap)) == D(expected)


@pytest.mark.parametrize(
    ("p", "b", "price", "lots", "expected"),
    [
        # f = 0.2, half Kelly 0.1 of 10 000 = 1 000 at 100 -> 10
        ("0.6", "1", "100", LotRules(D("1")), "10"),
        # f = 0.1, half 0.05 -> 500 / 100 = 5
        ("0.55", "1", "100", LotRules(D("1")), "5"),
        # 1 000 / 30 000 = 0.0333.. -> 0.033 at lot 0.001
        ("0.6", "1", "30000", LotRules(D("0.001")), "0.033"),
        # 0.033 × 30 000 = 990 < min notional 1 000 -> 0
        ("0.6", "1", "30000", LotRules(D("0.001"), D("1000")), "0"),
        # f = 0.9, half 0.45, capped at 0.25 -> 2 500 / 100 = 25
        ("0.95", "1", "100", LotRules(D("1")), "25"),
        # negative edge -> no bet
        ("0.3", "1", "100", LotRules(D("1")), "0"),
    ],
)
def test_kelly_sizer_from_win_rate(
    p: str, b: str, price: str, lots: LotRules, expected: str
) -> None:
    sizer = KellySizer(multiplier=D("0.5"), cap=D("0.25"), lots=lots)
    assert sizer.size_from_win_rate(D("10000"), D(price), D(p), D(b)) == D(expected)


def test_kelly_sizer_from_moments() -> None:
    # f = 0.01 / 0.04 = 0.25, quarter Kelly 0.0625 of 16 000 = 1 000 -> 10 at 100
    sizer = KellySizer(multiplier=D("0.25"), cap=D("1"), lots=LotRules(D("0.1")))
    assert sizer.size_from_moments(D("16000"), D("100"), "0.01", "0.04") == D("10")  # type: ignore[arg-type]


def test_kelly_sizer_zero_equity_and_bad_price() -> None:
    sizer = KellySizer()
    assert sizer.size_from_win_rate(D("0"), D("100"), D("0.6"), D("1")) == 0
    with pytest.raises(SizingError):
        sizer.size_from_win_rate(D("1000"), D("0"), D("0.6"), D("1"))


@pytest.mark.parametrize(
    ("entry", "stop", "lot", "expected"),
    [
        ("50000", "49000", "0.001", "1"),  # 1 000 at risk / 1 000 per unit
        ("100", "105", "1", "200"),  # short: stop above entry
        ("30000", "29100", "0.001", "1.111"),  # 1 000 / 900 = 1.1111..
    ],
)
def test_fixed_fractional(entry: str, stop: str, lot: str, expected: str) -> None:
    sizer = FixedFractionalSizer(D("0.01"), LotRules(D(lot)))
    assert sizer.size(D("100000"), D(entry), D(stop)) == D(expected)


def test_fixed_fractional_zero_distance_raises() -> None:
    with pytest.raises(SizingError):
        FixedFractionalSizer().size(D("1000"), D("100"), D("100"))


def test_fixed_fractional_respects_leverage_cap() -> None:
    # 1 % of 10 000 over a 0.1 stop distance = 1 000 units = 100 000 notional; 2x cap -> 200
    sizer = FixedFractionalSizer(D("0.01"), LotRules(D("1"), max_leverage=D("2")))
    assert sizer.size(D("10000"), D("100"), D("99.9")) == D("200")


def test_volatility_target_for_volatility() -> None:
    sizer = VolatilityTargetSizer(D("0.01"), LotRules(D("1")))
    # 0.01 × 100 000 / (100 × 0.02) = 500
    assert sizer.size_for_volatility(D("100000"), D("100"), D("0.02")) == D("500")


@pytest.mark.parametrize(("atr", "mult", "expected"), [("2.5", "2", "200"), ("3", "1", "333")])
def test_volatility_target_atr(atr: str, mult: str, expected: str) -> None:
    sizer = VolatilityTargetSizer(D("0.01"), LotRules(D("1")))
    # qty × ATR × multiple = 1 % of 100 000
    assert sizer.size_atr(D("100000"), D("100"), D(atr), D(mult)) == D(expected)


def test_realised_volatility_closed_form() -> None:
    # mean 0, Σ(r−μ)² = 0.0016, / (n−1 = 4) = 0.0004 -> σ = 0.02; × √4 = 0.04
    returns = ["0.02", "-0.02", "0.02", "-0.02", "0"]
    assert realised_volatility([D(r) for r in returns]) == D("0.02")
    assert realised_volatility([D(r) for r in returns], 4) == D("0.04")


def test_volatility_target_realised() -> None:
    sizer = VolatilityTargetSizer(D("0.2"), LotRules(D("1")))
    returns = [0.02, -0.02, 0.02, -0.02, 0.0]
    # annualised σ 0.04: 0.2 × 100 000 / (100 × 0.04) = 5 000
    assert sizer.size_realised(D("100000"), D("100"), returns, 4) == D("5000")


def test_volatility_target_errors() -> None:
    sizer = VolatilityTargetSizer()
    with pytest.raises(SizingError):
        sizer.size_for_volatility(D("1000"), D("100"), 0)
    with pytest.raises(SizingError):
        sizer.size_realised(D("1000"), D("100"), [0.01, 0.01])
    with pytest.raises(SizingError):
        realised_volatility([0.01])


def test_lot_rules_validation() -> None:
    with pytest.raises(SizingError):
        LotRules(D("0"))
    with pytest.raises(SizingError):
        LotRules(min_notional=D("-1"))
    with pytest.raises(SizingError):
        LotRules(max_leverage=D("0"))


_money = st.decimals(min_value="1", max_value="10000000", places=2)
_lot = st.sampled_from([D("1"), D("0.1"), D("0.001"), D("0.00000001")])


@settings(max_examples=200, deadline=None)
@given(
    equity=_money,
    price=_money,
    p=st.decimals(min_value="0", max_value="1", places=3),
    b=st.decimals(min_value="0.1", max_value="10", places=2),
    lot=_lot,
    min_notional=st.decimals(min_value="0", max_value="1000", places=0),
)
def test_kelly_sizer_invariants(equity: D, price: D, p: D, b: D, lot: D, min_notional: D) -> None:
    sizer = KellySizer(D("0.5"), D("0.25"), LotRules(lot, min_notional))
    qty = sizer.size_from_win_rate(equity, price, p, b)
    exact = equity * sizer.fraction(kelly_fraction(p, b)) / price
    assert qty >= 0
    assert qty % lot == 0
    assert qty <= exact  # rounding is always down
    assert qty * price <= equity * D("0.25")  # the cap holds after rounding
    if qty > 0:
        assert qty * price >= min_notional
        assert exact - qty < lot
    else:
        assert exact < lot or (exact // lot) * lot * price < min_notional


@settings(max_examples=200, deadline=None)
@given(
    equity=_money,
    entry=_money,
    offset=st.decimals(min_value="0.01", max_value="1000", places=2),
    lot=_lot,
)
def test_fixed_fractional_loss_at_stop_never_exceeds_budget(
    equity: D, entry: D, offset: D, lot: D
) -> None:
    stop = entry - offset if entry > offset else entry + offset
    sizer = FixedFractionalSizer(D("0.02"), LotRules(lot))
    qty = sizer.size(equity, entry, stop)
    assert qty % lot == 0
    assert qty * abs(entry - stop) <= equity * D("0.02")
