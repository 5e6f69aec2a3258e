"""Trades → time bars, and bars → coarser bars, aligned to UTC boundaries.

A bar's ``ts`` is the UTC start of its window. Each symbol has its own watermark (the end of its
last closed window, or the start of its open one): a trade is late only against its own symbol,
so one symbol's bad clock can never make every other symbol's trades late. The newest window
seen still closes the open bars of older windows of every symbol (a quiet symbol's bar is not
held open until its next trade) without moving their watermarks. ``advance(now)`` closes bars by
clock when the market is silent, ``flush()`` closes everything. Windows without trades produce
no bar, like Polygon's aggregates.

A late trade (for a window already closed) is never silently dropped: ``late="amend"`` re-emits
the corrected bar with ``amended=True`` (consumers upsert on symbol+timeframe+ts); ``late="count"``
counts it and hands it to ``on_late`` or keeps it in the bounded ``late`` deque.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from marketdata.engine.errors import UnsupportedTimeframe
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar, Trade

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from marketdata.engine.trade_batch import TradeColumns

LatePolicy = Literal["amend", "count"]
AGGREGATOR_TIMEFRAMES = ("1s", "1m")
_NEG_INF = -math.inf


def timeframe_seconds(timeframe: str) -> int:
    """Return the length of timeframe in seconds or raise UnsupportedTimeframe."""
    try:
        return TIMEFRAME_SECONDS[str(timeframe)]
    except KeyError:
        raise UnsupportedTimeframe(f"unknown timeframe {timeframe!r}") from None


def _check_late_policy(late: str) -> None:
    """Reject an unknown late-trade policy early, at construction."""
    if late not in ("amend", "count"):
        raise ValueError(f"late must be 'amend' or 'count', got {late!r}")


@dataclass(slots=True)
class AggregatorStats:
    """Counters of an aggregator or resampler, for metrics and tests."""

    bars_emitted: int = 0
    late_trades: int = 0
    amended_bars: int = 0
    late_kept: int = 0


class _OpenBar:
    """Mutable accumulator of one symbol's open window."""

    __slots__ = (
        "start",
        "end",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "pv",
        "count",
        "first_ts",
        "last_ts",
        "venue",
    )

    def __init__(self, start: float, end: float, ts: float, price: float, size: float, venue: str):
        self.start = start
        self.end = end
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.pv = price * size
        self.count = 1
        self.first_ts = self.last_ts = ts
        self.venue = venue

    def add(self, ts: float, price: float, size: float) -> None:
        """Fold one trade in; open/close follow trade time, not arrival order."""
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        if ts >= self.last_ts:
            self.close = price
            self.last_ts = ts
        elif ts < self.first_ts:
            self.open = price
            self.first_ts = ts
        self.volume += size
        self.pv += price * size
        self.count += 1

    def to_bar(self, symbol: str, timeframe: str, ts: datetime, amended: bool = False) -> Bar:
        """Freeze into an immutable Bar."""
        vwap = self.pv / self.volume if self.volume > 0.0 else None
        return Bar(
            symbol,
            timeframe,
            ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            vwap,
            self.count,
            self.venue,
            amended,
        )


class BarAggregator:
    """Aggregate trades into OHLCV+VWAP bars of one timeframe ("1s" or "1m"), per symbol."""

    def __init__(
        self,
        timeframe: str = "1m",
        *,
        late: LatePolicy = "amend",
        on_late: Callable[[Trade], None] | None = None,
        amend_horizon: int = 600,
        late_buffer: int = 10_000,
        venue: str | None = None,
    ) -> None:
        if str(timeframe) not in AGGREGATOR_TIMEFRAMES:
            raise UnsupportedTimeframe(f"aggregate trades into 1s or 1m bars, not {timeframe!r}")
        _check_late_policy(late)
        self.timeframe = str(timeframe)
        self.seconds = timeframe_seconds(self.timeframe)
        self.late_policy = late
        self.on_late = on_late
        self.amend_horizon = amend_horizon
        self.venue = venue
        self.late: deque[Trade] = deque(maxlen=late_buffer)
        self.stats = AggregatorStats()
        self._open: dict[str, _OpenBar] = {}
        # Closed bars kept for amendment: symbol -> window start -> accumulator.
        self._closed: dict[str, dict[float, _OpenBar]] = {}
        self._current = _NEG_INF  # start of the newest window seen, any symbol
        # Per symbol: windows starting before this are closed (late trades amend them).
        self._closed_until: dict[str, float] = {}
        self._closed_max = _NEG_INF  # the largest of those (the bulk path's precondition)
        self._floor = _NEG_INF  # closed for every symbol by the clock (advance) or flush

    def add(self, trade: Trade) -> list[Bar]:
        """Fold a trade in; return the bars it closed (or an amended bar for a late trade)."""
        ts = trade.ts.timestamp()
        acc = self._open.get(trade.symbol)
        if acc is not None and acc.start <= ts < acc.end:
            acc.add(ts, trade.price, trade.size)
            return []
        return self._add_slow(trade, ts)

    def add_many(self, trades: Iterable[Trade]) -> list[Bar]:
        """Fold trades in order; return every bar they closed."""
        out: list[Bar] = []
        add = self.add
        for trade in trades:
            bars = add(trade)
            if bars:
                out.extend(bars)
        return out

    def add_batch(self, columns: TradeColumns, positions: np.ndarray) -> dict[int, list[Bar]]:
        """Fold the trades at ``positions`` (ascending) in, exactly as ``add`` one by one.

        Return the bars each trade closed (or amended), by position. When the run is in time
        order, starts no earlier than the open windows and holds positive prices and sizes, the
        windows are built in bulk (``batch_windows``); otherwise trade by trade.
        """
        if not self._bulk_ok(columns, positions):
            out: dict[int, list[Bar]] = {}
            trades, add = columns.trades, self.add
            for pos in positions.tolist():
                bars = add(trades[pos])
                if bars:
                    out[pos] = bars
            return out
        from marketdata.engine.aggregator_batch import batch_windows

        return batch_windows(self, columns, positions)

    def _bulk_ok(self, columns: TradeColumns, positions: np.ndarray) -> bool:
        """Return True when the bulk path gives the scalar result for this run."""
        if not columns.columnar or len(positions) < 2:
            return False
        epoch = columns.epoch[positions]
        first = epoch[0] // self.seconds * self.seconds
        if first < max(self._current, self._closed_max, self._floor):
            return False  # late trades or older windows: amend or open them one by one
        if any(acc.start != self._current for acc in self._open.values()):
            return False  # a symbol's bar of an older window is open
        last = max((acc.last_ts for acc in self._open.values()), default=_NEG_INF)
        chosen_p, chosen_s = columns.price[positions], columns.size[positions]
        return bool(
            epoch[0] >= last
            and (epoch[1:] >= epoch[:-1]).all()
            and (chosen_p > 0.0).all()
            and (chosen_s > 0.0).all()
        )

    def advance(self, now: datetime) -> list[Bar]:
        """Close bars whose window ended at or before now (a clock tick in a quiet market)."""
        boundary = now.timestamp() // self.seconds * self.seconds
        if boundary <= self._floor:
            return []
        self._floor = boundary
        return self._close_open(lambda acc: acc.end <= boundary)

    def flush(self) -> list[Bar]:
        """Close every open bar; later trades for those windows are late."""
        if self._current > _NEG_INF:
            self._floor = max(self._floor, self._current + self.seconds)
        return self._close_open()

    def discard_open(self) -> int:
        """Forget the open (unfinished) bars without emitting them; return how many."""
        dropped = len(self._open)
        self._open = {}
        return dropped

    def open_bars(self) -> list[Bar]:
        """Return a snapshot of the bars still open (for live charts), without closing them."""
        return [
            acc.to_bar(sym, self.timeframe, datetime.fromtimestamp(acc.start, UTC))
            for sym, acc in self._open.items()
        ]

    def closed_until(self, symbol: str) -> float:
        """Return the symbol's watermark: its trades in windows starting before it are late."""
        floor = max(self._floor, self._closed_until.get(symbol, _NEG_INF))
        acc = self._open.get(symbol)
        return floor if acc is None else max(floor, acc.start)

    def _add_slow(self, trade: Trade, ts: float) -> list[Bar]:
        """Handle a trade that does not fall in its symbol's open window."""
        secs = self.seconds
        start = ts // secs * secs
        if start < self.closed_until(trade.symbol):
            return self._late(trade, ts, start)
        if start > self._current:
            out = self._close_open()
            self._current = start
        else:
            # A newer window of this symbol only (others are ahead): close its own bar.
            out = self._close_open(lambda acc: acc is self._open.get(trade.symbol))
        venue = self.venue or trade.venue
        self._open[trade.symbol] = _OpenBar(start, start + secs, ts, trade.price, trade.size, venue)
        return out

    def _close_open(self, which: Callable[[_OpenBar], bool] | None = None) -> list[Bar]:
        """Close the open bars (all, or those ``which`` picks) and remember them for amends."""
        if not self._open:
            return []
        if which is None:
            closing, self._open = self._open, {}
        else:
            closing = {sym: acc for sym, acc in self._open.items() if which(acc)}
            for sym in closing:
                del self._open[sym]
        bars = []
        for sym, acc in closing.items():
            bars.append(acc.to_bar(sym, self.timeframe, datetime.fromtimestamp(acc.start, UTC)))
            self._closed_until[sym] = max(self._closed_until.get(sym, _NEG_INF), acc.end)
            self._closed_max = max(self._closed_max, acc.end)
        if self.late_policy == "amend":
            self._remember(closing)
        self.stats.bars_emitted += len(bars)
        return bars

    def _remember(self, closing: dict[str, _OpenBar]) -> None:
        """Keep closed accumulators for amend_horizon windows, evicting older ones."""
        cutoff = self._current - self.amend_horizon * self.seconds
        for sym, acc in closing.items():
            history = self._closed.setdefault(sym, {})
            history[acc.start] = acc
            while history:
                oldest = next(iter(history))
                if oldest >= cutoff:
                    break
                del history[oldest]

    def _late(self, trade: Trade, ts: float, start: float) -> list[Bar]:
        """Amend the bar of a closed window, or count and keep the trade; never drop it."""
        self.stats.late_trades += 1
        horizon_start = self.closed_until(trade.symbol) - self.amend_horizon * self.seconds
        if self.late_policy == "amend" and start >= horizon_start:
            history = self._closed.setdefault(trade.symbol, {})
            acc = history.get(start)
            if acc is None:
                venue = self.venue or trade.venue
                acc = _OpenBar(start, start + self.seconds, ts, trade.price, trade.size, venue)
                history[start] = acc
            else:
                acc.add(ts, trade.price, trade.size)
            self.stats.amended_bars += 1
            ts_dt = datetime.fromtimestamp(start, UTC)
            return [acc.to_bar(trade.symbol, self.timeframe, ts_dt, amended=True)]
        self.stats.late_kept += 1
        if self.on_late is not None:
            self.on_late(trade)
        else:
            self.late.append(trade)
        return []


class _Window:
    """Source bars of one symbol's target window, keyed by source ts (amends replace).

    Source bars that can no longer be amended are folded into ``settled`` (a 1d window kept
    every 1m bar of its day: 1,440 a symbol, three days' worth with the two kept for amends).
    """

    __slots__ = ("start", "parts", "settled", "folded_until")

    def __init__(self, start: float) -> None:
        self.start = start
        self.parts: dict[datetime, Bar] = {}
        self.settled: _Settled | None = None
        self.folded_until: datetime | None = None  # source bars before this are in ``settled``

    def place(self, bar: Bar) -> bool:
        """Put (or replace) a source bar; return False when its time was already folded."""
        if self.folded_until is not None and bar.ts < self.folded_until:
            return False
        self.parts[bar.ts] = bar
        return True

    def fold(self, before: datetime) -> None:
        """Fold the source bars stamped before ``before`` into ``settled``, oldest first."""
        old = sorted(ts for ts in self.parts if ts < before)
        if not old:
            return
        for ts in old:
            bar = self.parts.pop(ts)
            if self.settled is None:
                self.settled = _Settled(bar)
            else:
                self.settled.add(bar)
        self.folded_until = before

    def combine(self, symbol: str, timeframe: str, ts: datetime, amended: bool) -> Bar:
        """Return the target bar of every source bar placed, folded or not."""
        if self.settled is None:
            return combine_bars(self.parts.values(), symbol, timeframe, ts, amended)
        return self.settled.combine(self.parts.values(), symbol, timeframe, ts, amended)


def _add_exact(partials: list[float], x: float) -> None:
    """Add ``x`` to the exact sum held as non-overlapping ``partials`` (Shewchuk, as fsum)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


class _Settled:
    """Source bars folded in time order: what ``combine_bars`` needs of them, sums kept exact.

    The sums stay exact partials, so the target bar's volume and VWAP are the very floats
    ``combine_bars`` gives from every source bar (``math.fsum`` of the partials and the rest).
    """

    __slots__ = ("open", "venue", "high", "low", "close", "volume", "pv", "count", "vwap_ok")

    def __init__(self, first: Bar) -> None:
        self.open, self.venue = first.open, first.venue
        self.high, self.low, self.close = first.high, first.low, first.close
        self.volume: list[float] = []
        self.pv: list[float] = []
        self.count = 0
        self.vwap_ok = True
        self._sums(first)

    def add(self, bar: Bar) -> None:
        """Fold in a source bar newer than every one folded before."""
        self.high = max(self.high, bar.high)
        self.low = min(self.low, bar.low)
        self.close = bar.close
        self._sums(bar)

    def _sums(self, bar: Bar) -> None:
        self.count += bar.trade_count
        _add_exact(self.volume, bar.volume)
        if bar.volume:
            if bar.vwap is None:
                self.vwap_ok = False
            else:
                _add_exact(self.pv, bar.vwap * bar.volume)

    def combine(
        self, parts: Iterable[Bar], symbol: str, timeframe: str, ts: datetime, amended: bool
    ) -> Bar:
        """Return ``combine_bars`` of the folded bars and ``parts`` (all newer than them)."""
        ordered = sorted(parts, key=lambda b: b.ts)
        volume = math.fsum([*self.volume, *(b.volume for b in ordered)])
        vwap: float | None = None
        if (
            volume > 0.0
            and self.vwap_ok
            and all(b.vwap is not None or b.volume == 0.0 for b in ordered)
        ):
            pv = math.fsum([*self.pv, *(b.vwap * b.volume for b in ordered if b.volume)])
            vwap = pv / volume
        return Bar(
            symbol,
            timeframe,
            ts,
            self.open,
            max([self.high, *(b.high for b in ordered)]),
            min([self.low, *(b.low for b in ordered)]),
            ordered[-1].close if ordered else self.close,
            volume,
            vwap,
            self.count + sum(b.trade_count for b in ordered),
            self.venue,
            amended,
        )


def combine_bars(
    parts: Iterable[Bar], symbol: str, timeframe: str, ts: datetime, amended: bool = False
) -> Bar:
    """Combine consecutive bars into one: first open, max high, min low, last close, sums."""
    ordered = sorted(parts, key=lambda b: b.ts)
    if not ordered:
        raise ValueError("combine_bars needs at least one bar")
    volume = math.fsum(b.volume for b in ordered)
    vwap: float | None = None
    if volume > 0.0 and all(b.vwap is not None or b.volume == 0.0 for b in ordered):
        vwap = math.fsum(b.vwap * b.volume for b in ordered if b.volume) / volume
    return Bar(
        symbol,
        timeframe,
        ts,
        ordered[0].open,
        max(b.high for b in ordered),
        min(b.low for b in ordered),
        ordered[-1].close,
        volume,
        vwap,
        sum(b.trade_count for b in ordered),
        ordered[0].venue,
        amended,
    )


class _SymbolWindows:
    """Resampler state of one symbol."""

    __slots__ = ("open", "closed_until", "history", "source_seconds", "newest")

    def __init__(self, source_seconds: int) -> None:
        self.open: _Window | None = None
        self.closed_until = _NEG_INF
        self.history: dict[float, _Window] = {}
        self.source_seconds = source_seconds
        self.newest: datetime | None = None  # the newest source bar's ts


class BarResampler:
    """Stream bars of a finer timeframe into bars of ``target`` (5m, 15m, 1h, 4h, 1d).

    A source bar may be replaced (amended) while it is less than ``part_horizon`` seconds older
    than its symbol's newest; older ones are folded into their window's running totals, so a
    window holds at most about ``2 * part_horizon`` seconds of source bars whatever its length.
    A source bar arriving for a time already folded is late (counted and kept, as below).
    """

    def __init__(
        self,
        target: str,
        *,
        late: LatePolicy = "amend",
        on_late: Callable[[Bar], None] | None = None,
        amend_horizon: int = 2,
        late_buffer: int = 10_000,
        part_horizon: float = 600.0,
    ) -> None:
        _check_late_policy(late)
        if not part_horizon > 0:
            raise ValueError(f"part_horizon must be positive, got {part_horizon!r}")
        self.target = str(target)
        self.seconds = timeframe_seconds(self.target)
        self.late_policy = late
        self.on_late = on_late
        self.amend_horizon = amend_horizon
        self.part_horizon = timedelta(seconds=part_horizon)
        self.late: deque[Bar] = deque(maxlen=late_buffer)
        self.stats = AggregatorStats()
        self._symbols: dict[str, _SymbolWindows] = {}
        self._current = _NEG_INF  # start of the newest target window seen, any symbol
        self._floor = _NEG_INF  # closed for every symbol by the clock (advance) or flush

    def add(self, bar: Bar) -> list[Bar]:
        """Fold a source bar in; return target bars completed or closed by time (or amended).

        Lateness is judged against the bar's own symbol only (see ``BarAggregator``).
        """
        state = self._state(bar)
        epoch = bar.ts.timestamp()
        start = epoch // self.seconds * self.seconds
        out: list[Bar] = []
        if start > self._current:
            out = self._close_all()
            self._current = start
        window = state.open
        if start < self._watermark(state):
            out.extend(self._late(state, bar, start))
            return out
        if window is not None and window.start < start:
            out.append(self._close(bar.symbol, state))
            window = None
        if window is None:
            window = state.open = _Window(start)
        if not self._place(state, window, bar):  # replaces a source bar already folded
            self.stats.late_trades += 1
            self._keep_late(bar)
            return out
        if epoch + state.source_seconds >= start + self.seconds:
            # The last sub-window of the target arrived: close now rather than one bar later.
            out.append(self._close(bar.symbol, state))
        return out

    def advance(self, now: datetime) -> list[Bar]:
        """Close target windows that ended at or before now."""
        boundary = now.timestamp() // self.seconds * self.seconds
        if boundary <= self._floor:
            return []
        self._floor = boundary
        return [
            self._close(sym, state)
            for sym, state in self._symbols.items()
            if state.open is not None and state.open.start + self.seconds <= boundary
        ]

    def flush(self) -> list[Bar]:
        """Close every open target window."""
        if self._current > _NEG_INF:
            self._floor = max(self._floor, self._current + self.seconds)
        return self._close_all()

    def discard_open(self) -> int:
        """Forget the open (unfinished) target windows without emitting them; return how many."""
        dropped = 0
        for state in self._symbols.values():
            dropped += state.open is not None
            state.open = None
        return dropped

    def _watermark(self, state: _SymbolWindows) -> float:
        """Return where the symbol's closed windows end (its open window's start, if later)."""
        mark = max(self._floor, state.closed_until)
        return mark if state.open is None else max(mark, state.open.start)

    def _state(self, bar: Bar) -> _SymbolWindows:
        """Return the symbol's state, checking the source timeframe fits the target."""
        state = self._symbols.get(bar.symbol)
        source = TIMEFRAME_SECONDS.get(str(bar.timeframe))
        if state is not None and state.source_seconds == source:
            return state
        if source is None or source >= self.seconds or self.seconds % source:
            raise UnsupportedTimeframe(f"cannot resample {bar.timeframe!r} bars to {self.target}")
        if state is not None:
            raise UnsupportedTimeframe(
                f"{bar.symbol}: got {bar.timeframe} bars after {state.source_seconds}s bars"
            )
        state = self._symbols[bar.symbol] = _SymbolWindows(source)
        return state

    def _close_all(self) -> list[Bar]:
        """Close every symbol's open window."""
        states = self._symbols.items()
        return [self._close(sym, state) for sym, state in states if state.open is not None]

    def _close(self, symbol: str, state: _SymbolWindows, amended: bool = False) -> Bar:
        """Emit the symbol's open window as a target bar and keep it for amends."""
        window = state.open
        assert window is not None  # callers only close open windows
        state.open = None
        state.closed_until = max(state.closed_until, window.start + self.seconds)
        if self.late_policy == "amend":
            state.history[window.start] = window
            while len(state.history) > self.amend_horizon:
                del state.history[next(iter(state.history))]
        self.stats.bars_emitted += 1
        ts = datetime.fromtimestamp(window.start, UTC)
        return window.combine(symbol, self.target, ts, amended)

    def _place(self, state: _SymbolWindows, window: _Window, bar: Bar) -> bool:
        """Put a source bar in its window, folding what can no longer be amended; False: late."""
        if state.newest is None or bar.ts > state.newest:
            state.newest = bar.ts
        if not window.place(bar):
            return False
        # Fold only once the window holds twice the amendable span: amortised, and a window of
        # the amendable span or shorter (5m, 15m of 1m bars) keeps every part, as before.
        span = self.part_horizon.total_seconds() / state.source_seconds
        if len(window.parts) > 2 * span + 1:
            window.fold(state.newest - self.part_horizon)
        return True

    def _keep_late(self, bar: Bar) -> None:
        """Count a source bar that cannot be placed and hand it on, never dropped silently."""
        self.stats.late_kept += 1
        if self.on_late is not None:
            self.on_late(bar)
        else:
            self.late.append(bar)

    def _late(self, state: _SymbolWindows, bar: Bar, start: float) -> list[Bar]:
        """Re-emit an amended target bar for a closed window, or count and keep the bar."""
        self.stats.late_trades += 1
        if self.late_policy == "amend":
            window = state.history.get(start)
            reference = self._watermark(state)
            if window is None and start >= reference - self.amend_horizon * self.seconds:
                window = state.history[start] = _Window(start)
            if window is not None and self._place(state, window, bar):
                self.stats.amended_bars += 1
                ts = datetime.fromtimestamp(start, UTC)
                return [window.combine(bar.symbol, self.target, ts, True)]
        self._keep_late(bar)
        return []


def resample_bars(bars: Iterable[Bar], target_timeframe: str) -> list[Bar]:
    """Resample finished bars (any symbols, any order) into target_timeframe bars."""
    resampler = BarResampler(target_timeframe)
    out: list[Bar] = []
    for bar in sorted(bars, key=lambda b: b.ts):
        out.extend(resampler.add(bar))
    out.extend(resampler.flush())
    return sorted(out, key=lambda b: (b.ts, b.symbol))


# -- vectorised paths (pandas imported lazily: the engine package stays light) ---------------

BAR_COLUMNS = ["ts", "symbol", "open", "high", "low", "close", "volume", "vwap", "trade_count"]


def aggregate_trades_frame(trades: pd.DataFrame, timeframe: str = "1m") -> pd.DataFrame:
    """Aggregate a trades frame (ts, price, size[, symbol]) into bars in one vectorised pass."""
    import pandas as pd

    seconds = timeframe_seconds(timeframe)
    frame = trades.assign(
        ts=pd.to_datetime(trades["ts"], utc=True).dt.floor(f"{seconds}s"),
        pv=trades["price"] * trades["size"],
    )
    if "symbol" not in frame:
        frame = frame.assign(symbol="")
    grouped = frame.groupby(["symbol", "ts"], sort=True)
    out = grouped.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        pv=("pv", "sum"),
        trade_count=("price", "size"),
    ).reset_index()
    out["vwap"] = out["pv"] / out["volume"].where(out["volume"] > 0)
    return out[BAR_COLUMNS].sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def resample_frame(bars: pd.DataFrame, target_timeframe: str) -> pd.DataFrame:
    """Resample a bars frame (BAR_COLUMNS) into target_timeframe bars, vectorised."""
    import pandas as pd

    seconds = timeframe_seconds(target_timeframe)
    frame = bars.sort_values(["symbol", "ts"], kind="stable")
    frame = frame.assign(
        ts=pd.to_datetime(frame["ts"], utc=True).dt.floor(f"{seconds}s"),
        pv=frame["vwap"] * frame["volume"],
    )
    out = (
        frame.groupby(["symbol", "ts"], sort=True)
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
            pv=("pv", "sum"),
            trade_count=("trade_count", "sum"),
        )
        .reset_index()
    )
    out["vwap"] = out["pv"] / out["volume"].where(out["volume"] > 0)
    return out[BAR_COLUMNS].sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
