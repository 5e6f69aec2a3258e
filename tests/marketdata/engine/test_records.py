"""fast_init: frozen record classes built faster, with the very same behaviour."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from marketdata.engine.events import Bar
from marketdata.engine.records import fast_init
from trading.engine.orders import OrderIntent, OrderSide, OrderType

TS = datetime(2024, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:  # the dataclass-generated __init__, for reference
    a: int
    b: str = "x"
    c: tuple = ()
    d: float | None = dataclasses.field(default=None, kw_only=True)


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: str = "x"
    c: tuple = ()
    d: float | None = dataclasses.field(default=None, kw_only=True)


def test_same_values_defaults_and_errors_as_the_generated_init() -> None:
    for args, kwargs in [((1,), {}), ((1, "y"), {"d": 2.5}), ((), {"a": 3, "c": (1,)})]:
        assert dataclasses.astuple(_Fast(*args, **kwargs)) == dataclasses.astuple(
            _Plain(*args, **kwargs)
        )
    for bad_args, bad_kwargs in [((), {}), ((1, "y", (), 4.0), {}), ((1,), {"e": 1})]:
        with pytest.raises(TypeError):
            _Plain(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            _Fast(*bad_args, **bad_kwargs)


def test_records_stay_frozen_hashable_replaceable_and_picklable() -> None:
    bar = Bar("BTC-USD", "1m", TS, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert bar.venue == "sim" and bar.vwap is None and bar.amended is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        bar.close = 3.0  # type: ignore[misc]
    assert bar == Bar("BTC-USD", "1m", TS, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert hash(bar) == hash(Bar("BTC-USD", "1m", TS, 1.0, 2.0, 0.5, 1.5, 10.0))
    moved = dataclasses.replace(bar, close=1.75)
    assert moved.close == 1.75 and moved.open == 1.0
    assert pickle.loads(pickle.dumps(bar)) == bar and copy.deepcopy(bar) == bar
    intent = OrderIntent(account="a", symbol="BTC-USD", side=OrderSide.BUY, quantity=1)
    assert intent.type is OrderType.MARKET and intent.metadata is None
    with pytest.raises(TypeError):
        OrderIntent("a", "BTC-USD", OrderSide.BUY, 1)  # type: ignore[misc]  # keyword-only


def test_refuses_what_it_cannot_rebuild() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPost:
        a: int

        def __post_init__(self) -> None: ...

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    for cls in (WithPost, WithFactory, Mutable, NoSlots):
        with pytest.raises(TypeError):
            fast_init(cls)
