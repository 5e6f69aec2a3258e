"""round_trips_traded: the trips, the traded notional and the fills' bars from one pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from backtesting.engine.result import epoch_ns, round_trips, round_trips_traded
from trading.engine.orders import Fill, Liquidity, OrderSide

T0 = datetime(2024, 1, 1, tzinfo=UTC)
D = Decimal


def _fill(i: int, symbol: str, side: OrderSide, qty: str, price: str, fee: str) -> Fill:
    ts = T0 + timedelta(minutes=i, seconds=30)
    return Fill(f"o{i}", symbol, side, D(qty), D(price), D(fee), Liquidity.TAKER, ts)


BUY, SELL = OrderSide.BUY, OrderSide.SELL
FILLS = [
    _fill(1, "AAA", BUY, "0.3", "100.10", "0.0300300000"),
    _fill(2, "BBB", SELL, "2", "5.5", "0.011"),
    _fill(3, "AAA", BUY, "0.2", "101", "0.0202"),
    _fill(4, "AAA", SELL, "0.7", "99.99", "0.0699930000"),  # closes 0.5, opens a 0.2 short
    _fill(6, "BBB", BUY, "0.5", "5.25", "0.0026250000"),  # partial cover
    _fill(7, "AAA", BUY, "0.2", "98", "0.0196"),  # closes the short
    _fill(9, "BBB", BUY, "1.5", "5", "0.0075"),  # closes BBB
    _fill(11, "AAA", BUY, "0.1", "97", "0.0097"),  # open at the end
]


def _starts(n: int) -> np.ndarray:
    return np.array([epoch_ns(T0 + timedelta(minutes=i)) for i in range(n)], dtype=np.int64)


def test_one_pass_gives_the_trips_the_traded_notional_and_each_fills_bar() -> None:
    starts = {"AAA": _starts(12), "BBB": _starts(12)[::2]}
    marks = {"AAA": D("97.5")}
    rebuilt = round_trips_traded(FILLS, bar_starts=starts, last_prices=marks)
    assert rebuilt.trips == round_trips(FILLS, bar_starts=starts, last_prices=marks)
    assert rebuilt.traded == sum((f.notional for f in FILLS), D(0))
    assert str(rebuilt.traded) == "170.648"  # exact, not a float sum
    expected_bars = [
        int(np.searchsorted(starts[f.symbol], epoch_ns(f.ts), side="right") - 1) for f in FILLS
    ]
    assert rebuilt.bars == expected_bars == [1, 1, 3, 4, 3, 7, 4, 11]
    aaa = [t for t in rebuilt.trips if t.symbol == "AAA"]
    assert [(t.side, t.quantity, t.bars_held) for t in aaa] == [
        ("long", D("0.5"), 3),
        ("short", D("0.2"), 3),
        ("long", D("0.1"), 0),
    ]
    # The flip's fee is split on the fee grid and its parts add up to it.
    assert aaa[0].fees + aaa[1].fees == D("0.0300300000") + D("0.0202") + D("0.0699930000") + D(
        "0.0196"
    )
    assert aaa[2].exit_ts is None and aaa[2].pnl == D("0.1") * (D("97.5") - D("97")) - D("0.0097")


def test_one_symbols_shortcut_maps_bars_as_the_grouped_path_does() -> None:
    own = [f for f in FILLS if f.symbol == "AAA"]
    starts = _starts(12)
    alone = round_trips_traded(own, bar_starts={"AAA": starts})
    # The same fills beside another symbol's take the grouped path.
    both = round_trips_traded(FILLS, bar_starts={"AAA": starts, "BBB": starts})
    at = [b for f, b in zip(FILLS, both.bars, strict=True) if f.symbol == "AAA"]
    assert alone.bars == at
    assert alone.trips == [t for t in both.trips if t.symbol == "AAA"]
    # A fill of a symbol without bars maps to bar 0, as before.
    stray = round_trips_traded(FILLS, bar_starts={"AAA": starts})
    assert [b for f, b in zip(FILLS, stray.bars, strict=True) if f.symbol == "BBB"] == [0] * 3
    assert round_trips_traded([], bar_starts={"AAA": starts}) == ([], D(0), [])


def _trips_spelled_out(fills, starts, marks) -> tuple[list, Decimal, list[int]]:
    """The round trips by ``_Leg``'s own methods, fill by fill (the loop before it was written
    out), and the bars by ``epoch_ns`` one fill at a time."""
    from backtesting.engine.result import _Leg
    from trading.engine.money import FEE_STEP, ZERO

    bars = [int(np.searchsorted(starts[f.symbol], epoch_ns(f.ts), side="right")) - 1 for f in fills]
    legs, out, traded = {}, [], ZERO
    for fill, at in zip(fills, bars, strict=True):
        qty, price, fee = fill.quantity, fill.price, fill.fee
        notional = qty * price
        traded += notional
        sign = 1 if fill.side is BUY else -1
        leg = legs.get(fill.symbol)
        if leg is not None and leg.sign != sign:
            closing = min(qty, abs(leg.position))
            if closing == qty:
                leg.reduce(qty, fee, notional)
                qty = ZERO
            else:
                close_fee = (fee * closing / qty).quantize(FEE_STEP)
                leg.reduce(closing, close_fee, closing * price)
                qty, fee = qty - closing, fee - close_fee
                notional = qty * price
            if leg.position == 0:
                out.append(leg.finish(fill.symbol, fill.ts, None, at - leg.entry_bar))
                del legs[fill.symbol]
                leg = None
        if qty > 0:
            if leg is None:
                leg = legs[fill.symbol] = _Leg(sign, fill.ts, fill.strategy, at)
            leg.add(qty, fee, notional)
    for symbol, leg in legs.items():
        out.append(leg.finish(symbol, None, marks[symbol], starts[symbol].size - 1 - leg.entry_bar))
    out.sort(key=lambda t: t.entry_ts)
    return out, traded, bars


def test_the_written_out_pass_equals_the_legs_methods_digit_for_digit() -> None:
    """Random fills on one or two symbols (flips, partial covers, quantities like 3.00000000
    and 1E+1, zero fees): the same trips, repr for repr, the same notional and bars."""
    import random

    for seed in range(200):
        rng = random.Random(seed)
        symbols = ("AAA", "BBB")[: rng.choice((1, 2))]
        fills = [
            Fill(
                f"o{i}",
                rng.choice(symbols),
                rng.choice((BUY, SELL)),
                D(rng.choice(("0.5", "1", "1.5", "2", "0.25", "3.00000000", "1E+1"))),
                D(str(round(rng.uniform(90, 110), 2))),
                D(rng.choice(("0.01", "0", "0.0123456789"))),
                Liquidity.TAKER,
                T0 + timedelta(minutes=i, seconds=rng.randint(0, 59)),
                f"t{i}",
                strategy="s",
            )
            for i in range(rng.randint(0, 50))
        ]
        starts = {s: _starts(60) for s in symbols}
        marks = {s: D("100.5") for s in symbols}
        got = round_trips_traded(fills, bar_starts=starts, last_prices=marks)
        trips, traded, bars = _trips_spelled_out(fills, starts, marks)
        assert [repr(t) for t in got.trips] == [repr(t) for t in trips], seed
        assert repr(got.traded) == repr(traded) and got.bars == bars, seed
