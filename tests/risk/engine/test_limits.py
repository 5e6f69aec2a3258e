"""LimitSpec: coercion from ORM strings, validation, scope matching."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from risk.engine.constants import MAX_DAILY_LOSS_PCT, MAX_POSITION_SIZE_PCT
from risk.engine.errors import InvalidLimitError
from risk.engine.limits import LimitAction, LimitKind, LimitScope, LimitSpec, default_limits
from tests.risk.engine.helpers import order, spec


def test_strings_are_coerced_to_enums_and_decimal() -> None:
    s = LimitSpec("max_position_pct", 0.2, "reduce", "symbol", "BTC-USD")  # type: ignore[arg-type]
    assert s.kind is LimitKind.MAX_POSITION_PCT
    assert s.action is LimitAction.REDUCE
    assert s.scope is LimitScope.SYMBOL
    assert s.value == D("0.2")  # via str, not the binary float
    assert s.label == "max_position_pct[symbol=BTC-USD]"
    assert spec("max_open_orders", "5").label == "max_open_orders"


def test_kind_values_match_the_orm_contract() -> None:
    assert sorted(k.value for k in LimitKind) == sorted(
        [
            "max_order_notional",
            "max_position_pct",
            "max_gross_exposure_pct",
            "max_net_exposure_pct",
            "max_open_orders",
            "max_order_rate",
            "price_band_bps",
            "max_daily_loss_pct",
            "max_drawdown_pct",
            "max_correlation",
        ]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "max_leverage", "value": "1"},
        {"kind": "max_open_orders", "value": "-1"},
        {"kind": "max_open_orders", "value": "abc"},
        {"kind": "max_open_orders", "value": "NaN"},
        {"kind": "max_open_orders", "value": "1", "action": "explode"},
        {"kind": "max_open_orders", "value": "1", "scope": "symbol"},
        {"kind": "max_correlation", "value": "1.5"},
        {"kind": "max_correlation", "value": "0.8", "params": {"max_combined_pct": "-1"}},
        {"kind": "max_order_rate", "value": "5", "params": {"window_seconds": 0}},
        {"kind": "max_order_rate", "value": "5", "params": {"window_seconds": "soon"}},
    ],
)
def test_invalid_specs_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidLimitError):
        LimitSpec(**kwargs)  # type: ignore[arg-type]


def test_params_with_defaults() -> None:
    assert spec("max_order_rate", "5").window_seconds == 60
    assert spec("max_order_rate", "5", window_seconds="10").window_seconds == 10
    assert spec("max_correlation", "0.8").max_combined_pct == D("0.50")
    assert spec("max_correlation", "0.8", max_combined_pct=0.3).max_combined_pct == D("0.3")


@pytest.mark.parametrize(
    ("scope", "value", "applies"),
    [
        ("global", "", True),
        ("symbol", "BTC-USD", True),
        ("symbol", "ETH-USD", False),
        ("account", "acct", True),
        ("account", "other", False),
        ("strategy", "momo", True),
        ("strategy", "meanrev", False),
    ],
)
def test_applies_to_scope(scope: str, value: str, applies: bool) -> None:
    s = spec("max_open_orders", "1", scope=scope, scope_value=value)
    assert s.applies_to(order(strategy="momo")) is applies


def test_disabled_spec_never_applies() -> None:
    s = LimitSpec(LimitKind.MAX_OPEN_ORDERS, D("1"), enabled=False)
    assert not s.applies_to(order())


def test_default_limits_use_the_documented_defaults() -> None:
    by_kind = {s.kind: s for s in default_limits()}
    assert by_kind[LimitKind.MAX_POSITION_PCT].value == MAX_POSITION_SIZE_PCT == D("0.20")
    assert by_kind[LimitKind.MAX_DAILY_LOSS_PCT].value == MAX_DAILY_LOSS_PCT == D("0.05")
    assert by_kind[LimitKind.MAX_DRAWDOWN_PCT].action is LimitAction.HALT
