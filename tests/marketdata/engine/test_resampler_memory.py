"""A resampler's windows hold minutes of source bars, not a day's (issue #21, soak memory).

A 1d window kept every 1m bar of its day (1,440 a symbol, and its two closed windows kept
for amends as many again): the 60-minute soak's engine grew by every 1m bar it saw. Source
bars older than ``part_horizon`` are folded into running totals, and the target bars are the
very floats ``combine_bars`` gives from all of them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from marketdata.engine.aggregator import BarResampler, combine_bars
from marketdata.engine.events import Bar

T0 = datetime(2024, 5, 1, tzinfo=UTC)
SYMBOLS = ("BTC-USD", "ETH-USD")


def minute_bar(symbol: str, minute: int, rng: random.Random, **kw: object) -> Bar:
    price = 100.0 + rng.uniform(-5.0, 5.0)
    volume = rng.choice([0.0, rng.uniform(0.0, 3.0), 1e-9 * rng.random(), 1e6 * rng.random()])
    return Bar(
        symbol,
        "1m",
        T0 + timedelta(minutes=minute),
        price,
        price + rng.random(),
        price - rng.random(),
        price + rng.uniform(-0.5, 0.5),
        volume,
        price + rng.uniform(-0.1, 0.1),
        rng.randrange(5),
        **kw,  # type: ignore[arg-type]
    )


def held(resampler: BarResampler) -> dict[str, int]:
    """Return the source bars each symbol's open and kept windows hold."""
    out = {}
    for symbol, state in resampler._symbols.items():
        windows = [*state.history.values(), *([state.open] if state.open else [])]
        out[symbol] = sum(len(w.parts) for w in windows)
    return out


def test_daily_windows_hold_a_bounded_number_of_source_bars() -> None:
    rng = random.Random(21)
    resampler = BarResampler("1d")
    most = dict.fromkeys(SYMBOLS, 0)
    source: list[Bar] = []
    emitted: list[Bar] = []
    for minute in range(4 * 1440):
        for symbol in SYMBOLS:
            bar = minute_bar(symbol, minute, rng)
            source.append(bar)
            emitted.extend(resampler.add(bar))
        for symbol, n in held(resampler).items():
            most[symbol] = max(most[symbol], n)
    emitted.extend(resampler.flush())
    # 3 windows (open + 2 kept) of at most 2 x 10 + 1 parts each (the old code: 4,320).
    assert max(most.values()) <= 3 * 21
    expected = []
    for day in range(4):
        start, end = T0 + timedelta(days=day), T0 + timedelta(days=day + 1)
        for symbol in SYMBOLS:
            parts = [b for b in source if b.symbol == symbol and start <= b.ts < end]
            expected.append(combine_bars(parts, symbol, "1d", start))
    key = lambda b: (b.ts, b.symbol)  # noqa: E731
    assert sorted(emitted, key=key) == sorted(expected, key=key)  # exact floats, every field


def test_recent_source_bars_are_amended_and_folded_ones_kept_as_late() -> None:
    rng = random.Random(7)
    resampler = BarResampler("1h", late="amend")
    source = {m: minute_bar("BTC-USD", m, rng) for m in range(50)}
    for bar in source.values():
        assert resampler.add(bar) == []
    # Minute 45 is 4 minutes behind the newest: still replaceable in the open window.
    source[45] = minute_bar("BTC-USD", 45, rng, amended=True)
    assert resampler.add(source[45]) == []
    # Minute 5 was folded into the open window's totals: kept as late, never dropped.
    folded = minute_bar("BTC-USD", 5, rng, amended=True)
    assert resampler.add(folded) == []
    assert list(resampler.late) == [folded]
    assert (resampler.stats.late_trades, resampler.stats.late_kept) == (1, 1)
    (hour,) = resampler.flush()
    assert hour == combine_bars(source.values(), "BTC-USD", "1h", T0)
    # Closed: a recent source bar amends the kept window, a folded one is late again.
    source[49] = minute_bar("BTC-USD", 49, rng, amended=True)
    (fixed,) = resampler.add(source[49])
    assert fixed == combine_bars(source.values(), "BTC-USD", "1h", T0, amended=True)
    assert resampler.add(minute_bar("BTC-USD", 1, rng, amended=True)) == []
    assert resampler.stats.late_kept == 2
