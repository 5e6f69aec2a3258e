"""``StrategyRunner``: one event loop body for backtests and live paper trading.

For each market event the runner lets the OMS (venue matching, marks) see it first, hands the
resulting fills to their strategies, then shows the event to the strategies and submits what they
queued. Because the venue sees a bar before the strategies do, an order a strategy sends on bar
``t`` can only fill on bar ``t``'s closing book or later: no look-ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import tee

from marketdata.engine.events import Bar, BookSnapshot, Quote, Timeframe, Trade
from trading.engine.algo_book import AlgoBook, algo_metadata
from trading.engine.errors import StrategyConfigError, TradingError
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, IdFactory, Order, OrderIntent, new_order_id
from trading.engine.strategy import (
    PositionSizer,
    Prediction,
    PriceHistory,
    Strategy,
    StrategyContext,
)

_STOPPED: frozenset[str] = frozenset()  # the symbols of a strategy stopped after an error


def _no_venue(bar: Bar) -> None:
    """Stand in for the venue's bar step when bars do not go to the venue (live feeds)."""


@dataclass(slots=True)
class _Slot:
    strategy: Strategy
    ctx: StrategyContext
    symbols: frozenset[str] | None
    # False when the strategy's class keeps the base ``on_fill`` (does nothing): its fills are
    # then not queued, and settling after a fill has nothing to deliver.
    takes_fills: bool = True

    def wants(self, symbol: str) -> bool:
        return self.symbols is None or symbol in self.symbols


class StrategyRunner:
    """Feed events to an ``OrderManager`` and to strategies; submit the strategies' intents."""

    def __init__(
        self,
        oms: OrderManager,
        *,
        history_size: int = 1000,
        id_factory: IdFactory = new_order_id,
        max_rounds: int = 32,
        bars_to_venue: bool = True,
    ) -> None:
        self.oms = oms
        # Live feeds stream trades and books to the venue; bars then only drive strategies, or
        # a resting order would fill twice (once on the print, once on the bar's replay).
        self.bars_to_venue = bars_to_venue
        self.history = PriceHistory(history_size)
        self._ids = id_factory
        self._max_rounds = max_rounds
        self._slots: list[_Slot] = []
        self._by_key: dict[tuple[str, str], _Slot] = {}
        self._fills: list[tuple[_Slot, Fill]] = []  # emptied in place, never replaced
        # Contexts that queued intents or cancels since the last settle (``StrategyContext``
        # adds itself): emptied in place by ``settle`` once nothing is left to submit.
        self._outbox: list[StrategyContext] = []
        # The strategies that take fills (``OrderListener.listening``): while none does, the
        # OMS does not call ``on_fill`` at all (it would look each fill's strategy up for
        # nothing). Added to in place by ``add``.
        self.listening: list[_Slot] = []
        self._bar_lengths: dict[str, timedelta] = {}
        # ``open_decided_bar``'s last symbol, its history list and trim length (``closes_of``).
        self._decided: tuple[str, list[float], int] = ("", [], 0)
        # Optional filter in front of the OMS for strategy intents (``trading.engine.gate``).
        self.gate: Callable[[OrderIntent], bool] | None = None
        self._sizer: PositionSizer | None = None
        # Live: called with (account, strategy id, error) when a strategy raises; it is then
        # stopped and the rest carries on. None (backtests): the error ends the run.
        self.on_strategy_error: Callable[[str, str, Exception], None] | None = None
        oms.add_listener(self)
        # TWAP/VWAP parents asked for by strategies (or services): children go through the OMS.
        self.algos = AlgoBook(oms)

    def add(
        self,
        strategy: Strategy,
        account: str,
        *,
        strategy_id: str | None = None,
        symbols: Iterable[str] | None = None,
    ) -> StrategyContext:
        """Run ``strategy`` for ``account`` (only on ``symbols`` if given); return its context."""
        self.oms.portfolio(account)
        sid = strategy_id or strategy.name
        if (account, sid) in self._by_key:
            raise StrategyConfigError(f"strategy id {sid!r} already runs on account {account!r}")
        ctx = StrategyContext(
            reader=self.oms,
            account=account,
            strategy_id=sid,
            history=self.history,
            id_factory=self._ids,
            outbox=self._outbox,
        )
        ctx.sizer = self._sizer
        slot = _Slot(strategy, ctx, frozenset(symbols) if symbols is not None else None)
        # Whether its class or the instance replaces ``on_fill``: read through the bound method,
        # never ``strategy.__dict__``. On CPython 3.11, reading an instance's ``__dict__`` turns
        # its attributes into a dict that ``self.x`` reads and writes cannot be specialised for:
        # every one in the strategy's own ``on_bar`` then took the slow generic path (the event
        # style's 1M-bar run: 14 % more instructions in all).
        slot.takes_fills = getattr(strategy.on_fill, "__func__", None) is not Strategy.on_fill
        if slot.takes_fills:
            self.listening.append(slot)
        self._slots.append(slot)
        self._by_key[(account, sid)] = slot
        return ctx

    @property
    def sizer(self) -> PositionSizer | None:
        """Return the sizing policy every strategy's entries are sized by (None: their own)."""
        return self._sizer

    @sizer.setter
    def sizer(self, sizer: PositionSizer | None) -> None:
        self._sizer = sizer
        for slot in self._slots:
            slot.ctx.sizer = sizer

    # ----------------------------------------------------------------- lifecycle

    def start(self, now: datetime) -> None:
        """Call every strategy's ``on_start``."""
        self._set_now(now)
        for slot in self._slots:
            try:
                slot.strategy.on_start(slot.ctx)
            except (Exception, SystemExit) as exc:  # its error, as in any callback
                self._failed(slot, exc, "on_start")
        self.settle(now)

    def warm_up(self, bars: Iterable[Bar], now: datetime) -> int:
        """Show past closed bars to the strategies so their first live bar is a decision.

        Nothing a strategy asks for while warming up is ever sent: its intents and cancels are
        dropped after each bar, and the venue never sees these bars. The clock then moves to
        ``now``, where live trading starts. Returns how many bars were shown.
        """
        shown = 0
        for bar in bars:
            length = self._bar_lengths.get(bar.timeframe)
            if length is None:
                length = self._bar_length(bar.timeframe)
            self._set_now(bar.ts + length)
            self.history.append(bar.symbol, bar.close)
            for slot in self._slots:
                if slot.wants(bar.symbol):
                    try:
                        slot.strategy.on_bar(bar, slot.ctx)
                    except (Exception, SystemExit) as exc:  # sys.exit() in it: its error
                        self._failed(slot, exc, f"warming up on the {bar.symbol} bar of {bar.ts}")
                    slot.ctx.drain()  # a warm-up decision is history, never an order
            shown += 1
        self._outbox.clear()  # every warm-up intent was dropped
        self._set_now(now)
        return shown

    def warmup_bars(self) -> int:
        """Return how many past bars per symbol the strategies (and their sizing) need."""
        sizer = self._sizer
        needed = [slot.strategy.warmup_bars for slot in self._slots]
        if sizer is not None:
            needed += [sizer.lookback(slot.ctx.strategy_id) for slot in self._slots]
        return max(needed, default=0)

    def stop(self, now: datetime) -> None:
        """Call every strategy's ``on_stop``."""
        self._set_now(now)
        for slot in self._slots:
            try:
                slot.strategy.on_stop(slot.ctx)
            except (Exception, SystemExit) as exc:
                self._failed(slot, exc, "on_stop")
        self.settle(now)

    # ----------------------------------------------------------------- events

    def on_bar(self, bar: Bar) -> None:
        """Process a closed bar (decisions are stamped at the bar's end)."""
        self.replay_bars((bar,), (self._bar_end(bar),))

    def replay_bars(
        self,
        bars: Iterable[Bar],
        ends: Iterable[datetime] | None = None,
        *,
        after: Callable[[int, Bar], object] | None = None,
        watch: Sized | None = None,
        start: int = 0,
    ) -> int:
        """Process closed bars in turn; return how many.

        ``ends``: each bar's end (its ``ts`` plus its timeframe, when its decisions are
        stamped) if the caller has them (a backtest's feed shares them with the next bars'
        starts); else computed. ``after``, ``watch`` and ``start`` as in ``replay_pairs``.
        """
        bars, ends = self._with_ends(bars) if ends is None else (bars, ends)
        return self.replay_pairs(
            zip(bars, ends, strict=False), after=after, watch=watch, start=start
        )

    def replay_pairs(
        self,
        pairs: Iterable[tuple[Bar, datetime]],
        *,
        after: Callable[[int, Bar], object] | None = None,
        watch: Sized | None = None,
        start: int = 0,
    ) -> int:
        """Process closed bars, each given with its end (``replay_bars``), in turn; return
        how many.

        ``_dispatch``'s steps for a bar, written out as one loop because a backtest runs it for
        every bar: the venue and the history see the bar, then every strategy
        that wants its symbol, then what they queued is submitted. Settling is skipped when no
        fill and no intent is waiting (most bars). A backtest's feed makes the pairs in one
        generator (``feed.bar_pairs``).

        ``after(row, bar)`` runs once bar ``row`` (counted from ``start``) is fully processed,
        so it sees the account as the bar left it (record equity, check risk): after every bar
        or, given ``watch`` (a collection something else fills, such as a listener's fills),
        only after the bars that leave it non-empty.
        """
        if len(self._slots) == 1:
            return self._replay_one(pairs, after, watch, start)
        return self._replay_many(pairs, after, watch, start)

    def _replay_many(
        self,
        pairs: Iterable[tuple[Bar, datetime]],
        after: Callable[[int, Bar], object] | None,
        watch: Sized | None,
        start: int,
    ) -> int:
        """``replay_pairs`` for any number of strategies."""
        slots, fills, outbox, algos = self._slots, self._fills, self._outbox, self.algos
        contexts = [slot.ctx for slot in slots]
        working = algos.active  # the algo parents at work: a dict changed only in place
        settle, failed, history = self.settle, self._failed, self.history
        to_venue = self.oms.on_bar if self.bars_to_venue else _no_venue
        always = after is not None and watch is None
        watch = watch if after is not None else None
        # The history list of the symbol of the previous bar (one symbol: always the same).
        symbol, closes, limit = None, [], 0
        row = start - 1
        for row, (bar, now) in enumerate(pairs, start):
            for ctx in contexts:
                ctx.now = now
            to_venue(bar)
            if working:
                algos.observe(bar)
            if bar.symbol != symbol:
                symbol = bar.symbol
                closes, limit = history.closes_of(symbol)
            closes.append(bar.close)  # ``history.append``, written out
            if len(closes) > limit:
                history.trim(symbol)
            if fills or outbox or working:
                settle(now)
            for slot in slots:
                wanted = slot.symbols
                if wanted is None or symbol in wanted:
                    try:
                        slot.strategy.on_bar(bar, slot.ctx)
                    except (Exception, SystemExit) as exc:  # sys.exit() in it: its error
                        failed(slot, exc, f"on_bar: the {symbol} bar of {bar.ts}")
            if fills or outbox or working:
                settle(now)
            if always or watch:
                after(row, bar)  # type: ignore[misc]
        return row + 1 - start

    def _replay_one(
        self,
        pairs: Iterable[tuple[Bar, datetime]],
        after: Callable[[int, Bar], object] | None,
        watch: Sized | None,
        start: int,
    ) -> int:
        """``replay_pairs`` for one strategy (most runs): the same steps without its two loops
        over one-item lists (an iterator made and freed each, every bar: some 800 instructions
        a bar, 4 % of an event-style run)."""
        slot, fills, outbox, algos = self._slots[0], self._fills, self._outbox, self.algos
        ctx = slot.ctx
        working = algos.active  # the algo parents at work: a dict changed only in place
        settle, failed, history = self.settle, self._failed, self.history
        to_venue = self.oms.on_bar if self.bars_to_venue else _no_venue
        always = after is not None and watch is None
        watch = watch if after is not None else None
        symbol, closes, limit = None, [], 0  # as in ``_replay_many``
        row = start - 1
        for row, (bar, now) in enumerate(pairs, start):
            ctx.now = now
            to_venue(bar)
            if working:
                algos.observe(bar)
            if bar.symbol != symbol:
                symbol = bar.symbol
                closes, limit = history.closes_of(symbol)
            closes.append(bar.close)  # ``history.append``, written out
            if len(closes) > limit:
                history.trim(symbol)
            if fills or outbox or working:
                settle(now)
            wanted = slot.symbols  # stopped after an error: an empty set
            if wanted is None or symbol in wanted:
                try:
                    slot.strategy.on_bar(bar, slot.ctx)
                except (Exception, SystemExit) as exc:  # sys.exit() in it: its error
                    failed(slot, exc, f"on_bar: the {symbol} bar of {bar.ts}")
            if fills or outbox or working:
                settle(now)
            if always or watch:
                after(row, bar)  # type: ignore[misc]
        return row + 1 - start

    def on_bar_decided(
        self, bar: Bar, columns: Callable[[], Iterable[tuple[int, Sequence[float]]]]
    ) -> dict[int, float] | None:
        """Process a closed bar for strategies described by decision tables.

        The venue and the history see the bar first (its fills change what is held:
        ``open_decided_bar``); then ``columns()`` pairs the index of a strategy (in the order
        added) with its table's column for this bar; those strategies get ``on_decision`` in
        place of ``on_bar``; then what they queued is submitted (``close_decided_bar``).
        Returns what their ``on_decision`` returned that was not None, by strategy index (None
        if nothing).
        """
        now = self.open_decided_bar(bar)
        slots = self._slots
        hints = None
        for index, choices in columns():
            slot = slots[index]
            hint = slot.strategy.on_decision(bar, choices, slot.ctx)
            if hint is not None:
                if hints is None:
                    hints = {}
                hints[index] = hint
        self.close_decided_bar(now)
        return hints

    def open_decided_bar(self, bar: Bar) -> datetime:
        """``on_bar_decided``'s first step: show ``bar`` to the venue and the history, settle
        what waits; return the decisions' time (the bar's end)."""
        length = self._bar_lengths.get(bar.timeframe)
        if length is None:
            length = self._bar_length(bar.timeframe)
        now = bar.ts + length
        for slot in self._slots:
            slot.ctx.now = now
        if self.bars_to_venue:
            self.oms.on_bar(bar)
        algos = self.algos
        working = algos.active  # a dict changed only in place
        if working:
            algos.observe(bar)
        symbol, closes, limit = self._decided  # ``history.append``, written out
        if symbol != bar.symbol:
            symbol = bar.symbol
            closes, limit = self.history.closes_of(symbol)
            self._decided = (symbol, closes, limit)
        closes.append(bar.close)
        if len(closes) > limit:
            self.history.trim(symbol)
        if self._fills or self._outbox or working:  # lists emptied in place, never replaced
            self.settle(now)
        return now

    def close_decided_bar(self, now: datetime) -> None:
        """``on_bar_decided``'s last step: submit what the decisions queued."""
        if self._fills or self._outbox or self.algos.active:
            self.settle(now)

    def decided_steps(
        self, symbol: str
    ) -> tuple[Callable[[Bar, datetime], None], Callable[[datetime], None]]:
        """Return ``open_decided_bar(bar, now)`` and ``close_decided_bar(now)`` for bars of
        ``symbol`` alone while one strategy runs (the sparse replay of one strategy on one
        symbol): the same steps, what they read held by the two functions (no attribute reads
        and lookups a bar)."""
        if len(self._slots) != 1:
            raise TradingError("decided_steps serves one strategy")
        ctx, fills, outbox, settle = self._slots[0].ctx, self._fills, self._outbox, self.settle
        to_venue = self.oms.on_bar if self.bars_to_venue else _no_venue
        algos, history = self.algos, self.history
        working = algos.active  # a dict changed only in place
        closes, limit = history.closes_of(symbol)  # ``history.append``'s list, kept

        def open_bar(bar: Bar, now: datetime) -> None:
            ctx.now = now
            to_venue(bar)
            if working:
                algos.observe(bar)
            closes.append(bar.close)
            if len(closes) > limit:
                history.trim(symbol)
            if fills or outbox or working:  # lists emptied in place, never replaced
                settle(now)

        def close_bar(now: datetime) -> None:
            if fills or outbox or working:
                settle(now)

        return open_bar, close_bar

    def deciding(self, index: int) -> tuple[Strategy, StrategyContext]:
        """Return the strategy added ``index``-th and its context, for a caller that calls its
        ``on_decision`` itself between ``open_decided_bar`` and ``close_decided_bar`` (the
        sparse replay of one strategy)."""
        slot = self._slots[index]
        return slot.strategy, slot.ctx

    def _with_ends(self, bars: Iterable[Bar]) -> tuple[Iterator[Bar], Iterator[datetime]]:
        """Return ``bars`` and, lazily, each one's end."""
        bars, copy = tee(bars)
        return bars, map(self._bar_end, copy)

    def _bar_end(self, bar: Bar) -> datetime:
        """Return when ``bar`` closes (its decisions' time)."""
        length = self._bar_lengths.get(bar.timeframe)
        if length is None:
            length = self._bar_length(bar.timeframe)
        return bar.ts + length

    def _bar_length(self, timeframe: str) -> timedelta:
        """Return (and remember) how long a ``timeframe`` bar lasts."""
        length = self._bar_lengths[timeframe] = timedelta(seconds=Timeframe(timeframe).seconds)
        return length

    def _dispatch(
        self,
        now: datetime,
        advance: Callable[[], object],
        callback: str,
        event: object,
        symbol: str,
    ) -> None:
        """Run one event: set the clock to ``now``, let the OMS see the event (``advance``),
        settle, show the event to every strategy that wants ``symbol`` through its method
        ``callback`` (an error goes to ``_failed``), settle again."""
        self._set_now(now)
        advance()
        self.settle(now)
        for slot in self._slots:
            wanted = slot.symbols
            if wanted is None or symbol in wanted:
                try:
                    getattr(slot.strategy, callback)(event, slot.ctx)
                except (Exception, SystemExit) as exc:  # sys.exit() in it: its error
                    self._failed(slot, exc, f"{callback}: {symbol} at {now}")
        self.settle(now)

    def on_trade(self, trade: Trade) -> None:
        """Process a trade print."""

        def advance() -> None:
            self.oms.on_trade(trade)
            if self.algos.active:
                self.algos.observe(trade)

        self._dispatch(trade.ts, advance, "on_trade", trade, trade.symbol)

    def on_quote(self, quote: Quote) -> None:
        """Process a quote."""
        self._dispatch(quote.ts, partial(self.oms.on_quote, quote), "on_quote", quote, quote.symbol)

    def on_book(self, book: BookSnapshot) -> None:
        """Process a book snapshot (strategies have no book callback)."""
        self._set_now(book.ts)
        self.oms.on_book(book)
        self.settle(book.ts)

    def on_prediction(self, prediction: Prediction) -> None:
        """Process a model prediction."""
        now = prediction.ts
        advance = partial(self.oms.advance, now)
        self._dispatch(now, advance, "on_prediction", prediction, prediction.symbol)

    def takes_signals(self) -> bool:
        """Return True if a strategy here reacts to external signals (overrides ``on_signal``)."""
        return any(type(s.strategy).on_signal is not Strategy.on_signal for s in self._slots)

    def on_signal(self, signal) -> None:
        """Process an external signal (``trading.engine.signals.Signal``) at the engine's now.

        Decided at the later of the signal's time and the last event's, never before it.
        """
        current = self._slots[0].ctx.now if self._slots else None
        now = signal.ts if current is None or signal.ts > current else current
        self._dispatch(now, partial(self.oms.advance, now), "on_signal", signal, signal.symbol)

    # ----------------------------------------------------------------- OMS listener

    def on_fill(self, fill: Fill) -> None:
        """Queue ``fill`` for the strategy that sent the order (unless it ignores fills)."""
        slot = self._by_key.get((fill.account, fill.strategy))
        if slot is not None and slot.takes_fills:
            self._fills.append((slot, fill))

    def on_order(self, order: Order) -> None:
        """Ignore order updates (strategies read their open orders from the context)."""

    # ----------------------------------------------------------------- internals

    def settle(self, now: datetime) -> None:
        """Deliver queued fills and submit queued intents until nothing is left."""
        if self.algos.active:
            self.submit_algo_children(now)
        fills, outbox = self._fills, self._outbox  # both emptied in place, never replaced
        if not fills and not outbox:
            return  # the common case on a bar: nothing happened, nothing to do
        rounds = self._max_rounds
        while rounds > 0:
            rounds -= 1
            if fills:
                self._deliver_fills()
            queued = len(outbox)
            sent = False
            for slot in self._slots:
                ctx = slot.ctx
                if ctx._intents or ctx._cancels:  # ``has_pending``, without the property call
                    self._submit(slot, now)
                    sent = True
            # Done when nothing was sent, or (but in the last round) when the submissions
            # brought no fill and queued nothing (a context joins the outbox with each intent
            # or cancel): the next round would find nothing to do.
            if not fills and (not sent or (rounds and len(outbox) == queued)):
                outbox.clear()  # in place: ``replay_bars`` holds the list
                return
        raise TradingError(f"strategies still trading after {self._max_rounds} rounds at {now}")

    def _deliver_fills(self) -> None:
        fills = self._fills[:]
        self._fills.clear()  # in place: ``replay_bars`` holds the list
        for slot, fill in fills:
            if slot.symbols is _STOPPED:
                continue
            try:
                slot.strategy.on_fill(fill, slot.ctx)
            except (Exception, SystemExit) as exc:  # sys.exit() in it: its error
                self._failed(slot, exc, f"on_fill: {fill.symbol} at {fill.ts}")

    def _failed(self, slot: _Slot, exc: BaseException, where: str) -> None:
        """A strategy raised (``sys.exit()`` too; KeyboardInterrupt is never caught): raise an
        error naming its file, line and event (backtests), or, with ``on_strategy_error`` set
        (live), stop that strategy alone, drop what it queued in this callback and report it;
        the engine and the other strategies carry on."""
        from trading.engine.signal_strategy import StrategyCodeError, code_error

        error = exc if isinstance(exc, StrategyCodeError) else code_error(slot.strategy, exc, where)
        handler = self.on_strategy_error
        if handler is None:
            raise error from exc
        slot.symbols = _STOPPED  # wants() is False from now on
        slot.ctx.drain()
        handler(slot.ctx.account, slot.ctx.strategy_id, error)

    def _submit(self, slot: _Slot, now: datetime) -> None:
        ctx = slot.ctx
        # ``ctx.drain()``, written out: no call, and no new cancel list while none is queued.
        intents = ctx._intents
        ctx._intents = []
        cancels = ctx._cancels
        if cancels:
            ctx._cancels = []
            for oid in cancels:
                order = self.oms.get(oid)
                if order is None:
                    continue  # finished before the cancel arrived: nothing to cancel
                if order.account != ctx.account or order.strategy != ctx.strategy_id:
                    raise TradingError(f"{ctx.strategy_id} cannot cancel order {oid}")
                self.oms.cancel(oid, now, reason=f"cancelled by {ctx.strategy_id}")
        gate, oms = self.gate, self.oms  # (``oms.submit`` called as a method: one intent, mostly)
        for intent in intents:
            if gate is None or gate(intent):
                # A plain order carries no metadata: no ``algo_metadata`` call to say so.
                if intent.metadata and algo_metadata(intent.metadata) is not None:
                    self.start_algo(intent, now)
                else:
                    oms.submit(intent, now)

    def start_algo(self, intent: OrderIntent, now: datetime) -> None:
        """Start working an algo parent (its first child is due at once)."""
        self.algos.start(intent, now)
        self.submit_algo_children(now)

    def submit_algo_children(self, now: datetime) -> None:
        """Submit the children of algo parents that came due (through the gate and the OMS)."""
        gate = self.gate
        for child in self.algos.due(now):
            if gate is None or gate(child):
                self.oms.submit(child, now)
            else:  # held back (halted account): its quantity returns to the schedule
                self.algos.dropped(child.client_order_id)

    def _set_now(self, now: datetime) -> None:
        for slot in self._slots:
            slot.ctx.now = now
