"""Sizing policies: fixed fraction, volatility target and Kelly, per account and per strategy."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from risk.engine.errors import SizingError
from risk.engine.sizing import PolicySizer, SizingMethod, SizingPolicy

LOT = D("0.0001")
PRICE = D("100")
EQUITY = D("100000")
# Alternating ±1 % returns: per-bar volatility is known in closed form.
CLOSES = [100.0]
for i in range(60):
    CLOSES.append(CLOSES[-1] * (1.01 if i % 2 == 0 else 0.99))


def size(policy: SizingPolicy, closes=CLOSES, fraction: str = "0.1", ppy: float = 1) -> D:
    return policy.size(
        equity=EQUITY,
        price=PRICE,
        fraction=D(fraction),
        lot=LOT,
        closes=closes,
        periods_per_year=ppy,
    )


def test_fixed_fraction_uses_the_strategy_fraction_unless_the_policy_sets_one() -> None:
    assert size(SizingPolicy()) == D("100")  # 10 % of 100,000 at 100
    assert size(SizingPolicy(fraction=D("0.05"))) == D("50")
    assert size(SizingPolicy(), fraction="0.333333") == D("333.3330")  # rounded down to the lot


def test_volatility_target_sizes_by_realised_volatility_and_is_capped_by_the_fraction() -> None:
    returns = [b / a - 1 for a, b in zip(CLOSES, CLOSES[1:], strict=False)]
    mean = sum(returns) / len(returns)
    vol = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    policy = SizingPolicy(
        SizingMethod.VOLATILITY_TARGET, fraction=D("1"), target_volatility=D("0.002"), lookback=60
    )
    expected = 0.002 * 100000 / (100 * vol)  # qty × price × vol = target × equity
    assert float(size(policy)) == pytest.approx(expected, abs=float(LOT))
    capped = SizingPolicy(
        SizingMethod.VOLATILITY_TARGET,
        fraction=D("0.01"),
        target_volatility=D("0.002"),
        lookback=60,
    )
    assert size(capped) == D("10")  # 1 % of equity: the ceiling binds
    annual = SizingPolicy(
        SizingMethod.VOLATILITY_TARGET,
        fraction=D("1"),
        target_volatility=D("0.002") * D(100).sqrt(),
        lookback=60,
    )
    # Annualised with 100 periods a year: the same position.
    assert float(size(annual, ppy=100)) == pytest.approx(expected, abs=2 * float(LOT))


def test_kelly_bets_nothing_without_an_edge_and_at_most_the_fraction_with_one() -> None:
    falling = [100.0 * 0.999**i for i in range(61)]
    rising = [100.0 * (1.001 + (0.0005 if i % 2 else -0.0005)) ** i for i in range(61)]
    policy = SizingPolicy(SizingMethod.KELLY, fraction=D("0.25"), lookback=60)
    assert size(policy, falling) == 0
    assert size(policy, rising) == D("250")  # a large edge: capped at 25 % of equity


def test_too_little_history_sizes_nothing_rather_than_guessing() -> None:
    for method in (SizingMethod.VOLATILITY_TARGET, SizingMethod.KELLY):
        assert size(SizingPolicy(method), closes=[100.0, 101.0]) == 0


def test_a_strategy_policy_overrides_the_account_default_and_round_trips() -> None:
    sizer = PolicySizer(
        SizingPolicy(fraction=D("0.05")),
        {"momo": SizingPolicy(SizingMethod.VOLATILITY_TARGET, lookback=20)},
        D(525600),
    )
    common = {"equity": EQUITY, "price": PRICE, "fraction": D("0.5"), "lot": LOT, "closes": CLOSES}
    assert sizer.size(strategy="sma_cross", **common) == D("50")
    assert sizer.lookback("sma_cross") == 0  # a fixed fraction reads no history
    assert sizer.lookback("momo") == 21
    assert PolicySizer.from_dict(sizer.as_dict()) == sizer


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "martingale"},
        {"fraction": D("0")},
        {"fraction": D("NaN")},
        {"target_volatility": D("-0.1")},
        {"lookback": 1},
        {"kelly_multiplier": D("0")},
    ],
)
def test_policies_no_order_could_be_sized_by_are_refused(kwargs) -> None:
    with pytest.raises(SizingError):
        SizingPolicy(**kwargs)
