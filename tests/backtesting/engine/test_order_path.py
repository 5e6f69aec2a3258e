"""The order path's shortcuts give exactly what the long way gives (issue #14).

Each test would fail if its shortcut went stale: a reference price read without replaying the
skipped bar, records built without the class call, datetimes reached by adding steps, fills not
queued for strategies that ignore them.
"""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting.engine.fills import BacktestVenue, FillConfig, FixedBps, tidy_decimal, tidy_price
from backtesting.engine.result import RoundTrip, _new_trip, to_datetime
from backtesting.engine.sparse import SparseReplay
from marketdata.engine.events import Bar, Quote
from marketdata.engine.records import record_builder
from tests.backtesting.engine.helpers import SYM, D, bar, minute
from trading.engine.errors import UnknownAccount
from trading.engine.money import to_decimal
from trading.engine.oms import OrderManager
from trading.engine.orders import (
    Fill,
    Liquidity,
    Order,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    SequentialIds,
    TimeInForce,
    order_from_intent,
)
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategy import Strategy
from trading.engine.venue import VenueConfig, VenueEvent, VenueEventKind, book_fill

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def _synced_reference(venue: BacktestVenue, symbol: str) -> Decimal | None:
    """The long way: replay the skipped bar at the inner venue, then read its mid."""
    venue._sync(symbol, venue._deferred)
    return venue.inner.reference_price(symbol)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.01, 1e7, allow_nan=False), min_size=1, max_size=5))
def test_reference_price_of_a_skipped_bar_is_the_synced_mid_digit_for_digit(closes) -> None:
    venue = BacktestVenue(FillConfig())
    for i, c in enumerate(closes):
        venue.on_bar(bar(i, c, c, c, c))
    quick = venue.reference_price(SYM)
    assert SYM in venue._stale  # the shortcut left the replay deferred
    slow = _synced_reference(venue, SYM)
    assert str(quick) == str(slow)


def test_reference_price_after_a_quote_is_the_quotes_mid_not_the_close() -> None:
    venue = BacktestVenue(FillConfig())
    venue.on_bar(bar(0, 100, 100, 100, 100))
    venue.on_quote(Quote(SYM, minute(1), 99.0, 1.0, 103.0, 1.0))
    venue.on_bar(bar(1, 100, 100, 100, 100))
    assert venue.reference_price(SYM) == _synced_reference(venue, SYM) != D(100)


def test_reference_price_with_a_spread_replays_the_bar() -> None:
    venue = BacktestVenue(FillConfig(slippage=FixedBps(5)))
    venue.on_bar(bar(0, 100, 100, 100, 100.5))
    assert venue.reference_price(SYM) == D("100.5")
    assert SYM not in venue._stale  # replayed: the synthetic book is centred on the print


def test_reference_price_while_a_limit_order_works_replays_the_bar() -> None:
    venue = BacktestVenue(FillConfig(model="close"))
    pf = Portfolio("a", D(100000), ts=minute(0))
    oms = OrderManager(venue, portfolios=[pf], id_factory=SequentialIds())
    oms.on_bar(bar(0, 100, 101, 99, 100))
    intent = OrderIntent(
        account="a", symbol=SYM, side=BUY, quantity=D(1), type=OrderType.LIMIT, price=D(90)
    )
    order = oms.submit(intent, minute(1))
    assert order.is_working
    oms.on_bar(bar(1, 100, 101, 99, 100.25))
    assert venue.reference_price(SYM) == D("100.25")
    assert SYM not in venue._stale


def test_next_open_fills_need_no_replay_of_the_signal_bar() -> None:
    """A market order filled at the open leaves the inner venue's book to be brought up to date
    when read: the reference price after the fill bar is that bar's close."""
    venue = BacktestVenue(FillConfig(taker_fee_bps=D(10)))
    pf = Portfolio("a", D(100000), ts=minute(0))
    oms = OrderManager(venue, portfolios=[pf], id_factory=SequentialIds())
    oms.on_bar(bar(0, 100, 101, 99, 100))
    oms.submit(OrderIntent(account="a", symbol=SYM, side=BUY, quantity=D(2)), minute(1))
    oms.on_bar(bar(1, 102, 103, 101, 102.5))
    assert pf.quantity(SYM) == D(2)
    assert pf.cash == D(100000) - D(204) - D("0.204")
    assert venue.reference_price(SYM) == D("102.5") == _synced_reference(venue, SYM)


def _same_record(a: object, b: object) -> None:
    assert type(a) is type(b)
    assert a == b and hash(a) == hash(b)
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        assert getattr(a, f.name) is getattr(b, f.name)
    assert pickle.loads(pickle.dumps(b)) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.symbol = "X"  # type: ignore[attr-defined]


def test_record_builder_builds_the_very_records_the_class_builds() -> None:
    now = minute(3)
    q, p = D("0.5"), D("101.25")
    fill_args = ("o1", SYM, BUY, q, p, D("0.05"), Liquidity.TAKER, now, "v:o1:0.5", "a", "s")
    _same_record(Fill(*fill_args), record_builder(Fill)(*fill_args))
    kw = dict(account="a", symbol=SYM, side=SELL, quantity=q, reduce_only=True, signal="x:flat")
    _same_record(OrderIntent(**kw), record_builder(OrderIntent)(**kw))  # type: ignore[arg-type]
    order = Order(symbol=SYM, side=BUY, quantity=q)
    ev = (VenueEventKind.FILL, order, now, order.status)
    built = record_builder(VenueEvent)(*ev)
    assert built == VenueEvent(*ev) and type(built) is VenueEvent
    bar_args = (SYM, "1m", now, 1.0, 2.0, 0.5, 1.5, 3.0)
    _same_record(Bar(*bar_args), record_builder(Bar)(*bar_args))
    trip = (SYM, "long", q, now, p, minute(9), D("102"), D("0.3"), D("0.1"), 6, 0.0074, "s")
    _same_record(RoundTrip(*trip), _new_trip(*trip))  # what _Leg.finish builds
    assert _new_trip is not RoundTrip  # the builder, not the class call
    with pytest.raises(TypeError):
        record_builder(Fill)(*fill_args[:-3], bogus=1)  # the class's own parameters only


def test_record_builder_falls_back_to_the_class_when_it_cannot_copy_it() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Listed:
        xs: list = dataclasses.field(default_factory=list)

    assert record_builder(Checked) is Checked
    assert record_builder(Listed) is Listed


def test_to_order_equals_the_order_the_class_builds_field_by_field() -> None:
    now = minute(1)
    for side, kind, tif in ((BUY, OrderType.MARKET, TimeInForce.GTC), ("sell", "limit", "day")):
        intent = OrderIntent(
            account="a",
            symbol=SYM,
            side=side,  # type: ignore[arg-type]
            quantity=D(1),
            type=kind,  # type: ignore[arg-type]
            price=D(90) if kind != OrderType.MARKET else None,
            tif=tif,  # type: ignore[arg-type]
            strategy="s",
            signal="sig",
            metadata={"k": 1},
        )
        fast = intent.to_order("id-1", now)
        slow = Order(
            symbol=SYM,
            side=OrderSide(side),
            quantity=D(1),
            type=OrderType(kind),
            account="a",
            client_order_id="id-1",
            price=intent.price,
            tif=TimeInForce(tif),
            strategy="s",
            signal="sig",
            created_ts=now,
            updated_ts=now,
            metadata={"k": 1},
        )
        assert type(fast) is Order
        assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
        assert fast.side is slow.side and fast.type is slow.type and fast.tif is slow.tif
        assert fast.metadata is not intent.metadata  # a copy, as before
        fast.quantity = D(2)  # orders stay mutable


class _Replay(SparseReplay):
    def __init__(self) -> None:  # only the clock of a replay
        self._stamp, self._when, self._steps = 0, to_datetime(0), {}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**18), 4 * 10**18), min_size=1, max_size=40))
def test_visit_datetimes_equal_to_datetime(stamps) -> None:
    replay = _Replay()
    for stamp in sorted(stamps):
        assert replay._datetime(stamp) == to_datetime(stamp)


def test_visit_datetimes_on_a_minute_grid_reuse_their_steps() -> None:
    replay = _Replay()
    stamps = (np.arange(0, 5000) * 60 + 1_700_000_000) * 10**9 + 999
    for stamp in stamps.tolist():
        assert replay._datetime(stamp) == to_datetime(stamp)
    assert len(replay._steps) == 2  # the first gap and one minute


class _Counts(Strategy):
    name = "counts"

    def on_start(self, ctx) -> None:
        self.seen = []

    def on_bar(self, bar, ctx) -> None:
        if not ctx.position(bar.symbol) and not ctx.open_orders(bar.symbol):
            ctx.buy(bar.symbol, D(1))


class _Hears(_Counts):
    def on_fill(self, fill, ctx) -> None:
        self.seen.append(fill.quantity)


def _run(strategy: Strategy) -> None:
    venue = BacktestVenue(FillConfig())
    pf = Portfolio("a", D(100000), ts=minute(0))
    oms = OrderManager(venue, portfolios=[pf], id_factory=SequentialIds())
    runner = StrategyRunner(oms, id_factory=SequentialIds("c"))
    runner.add(strategy, "a")
    runner.start(minute(0))
    for i in range(3):
        runner.on_bar(bar(i, 100, 101, 99, 100))


def test_fills_reach_strategies_that_override_on_fill_and_only_them() -> None:
    hears = _Hears()
    _run(hears)
    assert hears.seen == [D(1)]
    silent = _Counts()
    silent.on_fill = lambda fill, ctx: silent.seen.append(fill.quantity)  # type: ignore[method-assign]
    _run(silent)
    assert silent.seen == [D(1)]  # an instance's own on_fill counts too
    runner = StrategyRunner(OrderManager(BacktestVenue(FillConfig())), history_size=10)
    runner.oms.add_account(Portfolio("a", D(1)))
    runner.add(_Counts(), "a")
    assert runner._slots[0].takes_fills is False


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**32 - 1))
def test_signal_table_follows_the_rules_for_every_side_held(n, seed) -> None:
    """The table written in place equals the rules spelled out as nested choices."""
    import pandas as pd

    from trading.engine.signal_strategy import SignalStrategy

    rng = np.random.default_rng(seed)
    names = ("enter_long", "enter_short", "exit_long", "exit_short")
    # The bars' rows are always there (index), even when no signal column is drawn.
    df = pd.DataFrame({c: rng.random(n) < 0.4 for c in names if rng.random() < 0.8}, index=range(n))
    el, es, xl, xs = (
        df[c].to_numpy(dtype=bool) if c in df else np.zeros(n, dtype=bool) for c in names
    )
    nan = np.nan
    want = np.stack(
        [
            np.where(el, 1.0, np.where(xs, 0.0, nan)),  # short
            np.where(el, 1.0, np.where(es, -1.0, nan)),  # flat
            np.where(es, -1.0, np.where(xl, 0.0, nan)),  # long
        ]
    )
    got = SignalStrategy.table_of(df)
    assert got.shape == (3, n)
    assert np.array_equal(got, want, equal_nan=True)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.builds(round, st.floats(0, 1e9, allow_nan=False), st.integers(0, 12)),
        st.builds(lambda cents: cents / 100, st.integers(1, 10**11)),  # the whole-cents path
        st.sampled_from(
            [30_000.0, 30123.45, 99_999_999.99, 0.01, 0.1, 100.10000000000001, 12345678901.0]
            + [1e-5, 1e22]
        ),
    )
)
def test_tidy_decimal_is_the_tidied_price_converted_digit_for_digit(price) -> None:
    # The shortcut (a price already within PRICE_DIGITS digits is converted as is) must give
    # the very Decimal the long way gives: same value, same exponent, same text.
    assert str(tidy_decimal(price)) == str(to_decimal(tidy_price(price)))


def test_fill_trade_ids_spell_the_filled_quantity_as_str_does() -> None:
    # The trade id is restart-safe only if it spells the filled quantity exactly; ``!s`` must
    # give what format() gave (exponents and trailing zeros included).
    for qty in (D("0.06"), D("1E+2"), D("0.00000001"), D("1.500"), D("123456.78901234")):
        order = Order(symbol=SYM, side=BUY, quantity=qty, client_order_id="c1")
        order.transition(OrderStatus.OPEN, minute(0))
        fill = book_fill(VenueConfig("v"), order, qty, D(100), Liquidity.TAKER, minute(0))
        assert fill.venue_trade_id == f"v:c1:{format(order.filled_quantity, '')}"


def test_order_from_intent_keeps_the_intents_own_id_and_copies_nothing_shared() -> None:
    intent = OrderIntent(account="a", symbol=SYM, side=SELL, quantity=D(3), client_order_id="mine")
    order = order_from_intent(intent, "given", minute(2))
    assert order.client_order_id == "mine" and order.created_ts == order.updated_ts == minute(2)
    assert order.metadata == {}
    assert order_from_intent(intent, "x", None).metadata is not order.metadata
    unnamed = dataclasses.replace(intent, client_order_id="")
    assert order_from_intent(unnamed, "given", None).client_order_id == "given"


def test_position_quantity_of_an_unmanaged_account_raises() -> None:
    oms = OrderManager(BacktestVenue(FillConfig()), portfolios=[Portfolio("a", D(100))])
    assert oms.position_quantity("a", SYM) == 0
    with pytest.raises(UnknownAccount):
        oms.position_quantity("nobody", SYM)


def test_record_builder_with_given_fields_builds_the_bar_the_class_builds() -> None:
    # One builder for the engine's records: the bar feed's eight columns, the rest defaults.
    given = ("symbol", "timeframe", "ts", "open", "high", "low", "close", "volume")
    build = record_builder(Bar, given)
    assert build is not Bar
    args = (SYM, "1m", minute(3), 1.0, 2.0, 0.5, 1.5, 7.0)
    fast, slow = build(*args), Bar(*args)
    assert type(fast) is Bar and fast == slow and hash(fast) == hash(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.close = 2.0  # type: ignore[misc]
    assert record_builder(Bar, ("timeframe", "symbol")) is Bar  # not the leading fields


@pytest.mark.parametrize("model", ["next_open", "close"])
@pytest.mark.parametrize("held", ["-2", "0", "2"])
@pytest.mark.parametrize("side", [BUY, SELL])
def test_a_reduce_only_market_order_is_held_exactly_when_it_reduces_the_position(
    model: str, held: str, side: OrderSide
) -> None:
    """``BacktestVenue.submit`` reads the position alone (the call's fills were just cleared):
    a reduce-only buy needs a short, a sell a long (else it is rejected at once)."""
    venue = BacktestVenue(FillConfig(model=model))  # type: ignore[arg-type]
    pf = Portfolio("a", D(100000), ts=minute(0))
    oms = OrderManager(venue, portfolios=[pf], id_factory=SequentialIds())
    oms.on_bar(bar(0, 100, 101, 99, 100))
    if held != "0":
        first = OrderIntent(
            account="a",
            symbol=SYM,
            side=BUY if held[0] != "-" else SELL,
            quantity=D(held.lstrip("-")),
        )
        oms.submit(first, minute(1))
        oms.on_bar(bar(1, 100, 101, 99, 100))
    assert pf.quantity(SYM) == D(held)
    intent = OrderIntent(account="a", symbol=SYM, side=side, quantity=D(1), reduce_only=True)
    order = oms.submit(intent, minute(2))
    if D(held) < 0 if side is BUY else D(held) > 0:
        assert order.status is (OrderStatus.PENDING if model == "next_open" else OrderStatus.FILLED)
    else:
        assert order.status is OrderStatus.REJECTED
        assert order.reject_reason == "reduce_only: no opposite position to reduce"
