"""Event-driven backtests through the live trading stack.

``BacktestRunner`` replays bars (and, when given, trade prints, book snapshots and model
predictions) through ``trading.engine.runner.StrategyRunner`` — the loop ``runtrader`` runs — with
the ``OrderManager``, ``Portfolio`` and an optional pre-trade hook (``risk.engine.checks.
RiskChecker``) exactly as in paper trading. Only the venue differs: ``fills.BacktestVenue``
wraps ``PaperVenue`` to apply the chosen fill model. Every strategy trades one shared account.

Events are ordered by the time they become known: a bar at its end (``ts`` + timeframe), prints,
books, quotes and predictions at their ``ts``. On ties books and quotes come first (the market
state at the moment a bar closes, which its decisions then see), then the bar, then prints (they
belong to the next bar's window) and predictions.
Bars of several symbols with the same ``ts`` are shown in symbol order, and equity is recorded
once all of them were processed.

When every strategy has a decision table, no hook is attached and only bars are replayed at the
next open or the close, the run visits only the bars where something can happen (``sparse``
module): the same calls, the same results, a fraction of the bars.
"""

from __future__ import annotations

import gc
import heapq
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd

from backtesting.engine.calendars import Calendar, elapsed_years, infer_calendar
from backtesting.engine.errors import BacktestConfigError, BacktestDataError
from backtesting.engine.feed import bar_events, bar_pairs
from backtesting.engine.fills import (
    BacktestVenue,
    FillConfig,
    FillModel,
    NoSlippage,
    SlippageModel,
)
from backtesting.engine.metrics import returns_from_equity, summarize
from backtesting.engine.result import BacktestResult, epoch_ns, round_trips_traded, to_datetime
from backtesting.engine.sparse import (
    SparsePlan,
    SparseReplay,
    StateLog,
    build_plan,
    equity_by_row,
)
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar, BookSnapshot, Quote, Trade
from risk.engine.enforcer import StopEnforcer
from risk.engine.stops import StopRule
from trading.engine.buying_power import BuyingPowerPolicy, Margin
from trading.engine.constants import DEFAULT_LOT
from trading.engine.hooks import PreTradeHook
from trading.engine.money import ZERO, to_decimal
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Order, OrderSide, SequentialIds
from trading.engine.portfolio import Portfolio
from trading.engine.runner import StrategyRunner
from trading.engine.strategy import Prediction, Strategy

ProgressCallback = Callable[[int, int], None]
"""``(bars_done, bars_total)``, called every ``progress_every`` bars and at the end."""

BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_YEAR_SECONDS = 365 * 24 * 3600  # crypto trades around the clock


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Capital, costs and fill model of a backtest."""

    initial_cash: Decimal = Decimal(100_000)
    account: str = "backtest"
    fill_model: FillModel = FillModel.NEXT_OPEN
    slippage: SlippageModel = NoSlippage()
    maker_fee_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    volume_cap: float | None = None
    quantity_step: Decimal = DEFAULT_LOT
    book_levels: int = 5
    timeframe: str | None = None  # None: the data's "timeframe" column, else inferred
    periods_per_year: float | None = None  # None: from the bars' calendar (``calendars``)
    history_size: int = 1000
    leverage: Decimal = Decimal(1)  # gross exposure ≤ leverage × equity; 1: no borrowing
    buying_power: BuyingPowerPolicy = BuyingPowerPolicy.REDUCE  # for orders beyond it
    # Protective stops on every position, enforced by runtrader's ``StopEnforcer``.
    stop_rules: tuple[StopRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial_cash", to_decimal(self.initial_cash))
        object.__setattr__(self, "maker_fee_bps", to_decimal(self.maker_fee_bps))
        object.__setattr__(self, "taker_fee_bps", to_decimal(self.taker_fee_bps))
        try:
            object.__setattr__(self, "fill_model", FillModel(self.fill_model))
        except ValueError:
            known = ", ".join(m.value for m in FillModel)
            raise BacktestConfigError(
                f"unknown fill model {self.fill_model!r}; use {known}"
            ) from None
        if self.initial_cash <= 0:
            raise BacktestConfigError("initial_cash must be positive")
        if self.history_size < 1:
            raise BacktestConfigError("history_size must be at least 1")
        try:
            self.margin()
        except ValueError as exc:
            raise BacktestConfigError(str(exc)) from None

    def margin(self) -> Margin:
        """Return the account's buying-power setting."""
        return Margin(to_decimal(self.leverage), self.buying_power, self.quantity_step)

    def fill_config(self) -> FillConfig:
        """Return the venue configuration for this backtest."""
        return FillConfig(
            model=FillModel(self.fill_model),
            slippage=self.slippage,
            maker_fee_bps=self.maker_fee_bps,
            taker_fee_bps=self.taker_fee_bps,
            volume_cap=self.volume_cap,
            quantity_step=self.quantity_step,
            book_levels=self.book_levels,
        )


@dataclass(slots=True)
class _Recorder:
    """OMS listener keeping every order (first-seen order) and fill of the run.

    The OMS calls ``on_fill(fill)`` once a fill and ``on_order(order)`` at every change of an
    order: both are C calls of the recorder's own containers (a method doing the same cost a
    Python call more each time), ``seen`` keeping each order object once, first seen first.
    """

    seen: dict[Order, None] = field(default_factory=dict)  # orders hash by identity
    fills: list[Fill] = field(default_factory=list)
    on_fill: Callable[[Fill], None] = field(init=False, repr=False, compare=False)
    on_order: Callable[[Order], None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.on_fill = self.fills.append
        self.on_order = self.seen.setdefault  # ``seen[order] = None`` the first time

    @property
    def orders(self) -> dict[str, Order]:
        """Return every order by id, in first-seen order (the first object seen for an id:
        the live object, its final state read at the end)."""
        orders: dict[str, Order] = {}
        for order in self.seen:
            orders.setdefault(order.client_order_id, order)
        return orders


class _FillFlag:
    """OMS listener noting that fills came (``_drive_logged`` empties ``fills`` after a bar)."""

    __slots__ = ("fills", "on_fill")

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        # ``on_fill(fill)`` notes ``fill``: the list's own ``append`` (a C call, not a method's)
        self.on_fill: Callable[[Fill], None] = self.fills.append

    def on_order(self, order: Order) -> None:
        """Ignore order changes."""


def _quantities(portfolio: Portfolio) -> dict[str, Decimal]:
    """Return ``portfolio``'s position quantities by symbol."""
    return {symbol: pos.quantity for symbol, pos in portfolio.positions.items()}


@dataclass(frozen=True, slots=True)
class BarData:
    """Bars as columns, sorted by (ts, symbol); what the runner and the vectorised path read."""

    ts: np.ndarray  # int64 ns since the epoch, UTC
    symbol: np.ndarray  # object
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    timeframe: str
    # The distinct symbols, sorted, when known (``prepare_bars``); else computed on first use.
    names: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def symbols(self) -> list[str]:
        """Return the symbols, sorted."""
        if self.names is None:
            object.__setattr__(self, "names", tuple(sorted(set(self.symbol.tolist()))))
        return list(self.names)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.ts.size)

    def closes(self, index: pd.DatetimeIndex | None = None) -> pd.DataFrame:
        """Return close prices as a (ts × symbol) frame (NaN where a symbol has no bar).

        ``index``: the bar times as a UTC ``DatetimeIndex`` when the caller has built it.
        """
        stamps, names = self.stamps() if index is None else index.asi8, self.symbols
        if len(names) == 1:
            values = self.close[:, None]
        else:
            codes = np.searchsorted(np.asarray(names, dtype=object), self.symbol)
            values = np.full((stamps.size, len(names)), np.nan)
            values[np.searchsorted(stamps, self.ts), codes] = self.close
        if index is None:
            index = pd.DatetimeIndex(stamps.astype("datetime64[ns]")).tz_localize(UTC)
        index = index.rename("ts")
        return pd.DataFrame(values, index=index, columns=pd.Index(names, name="symbol"))

    def stamps(self) -> np.ndarray:
        """Return the distinct bar timestamps (int64 ns), ascending."""
        ts = self.ts
        if ts.size == 0:
            return ts
        return ts[np.concatenate([[True], ts[1:] != ts[:-1]])]

    def to_frame(self) -> pd.DataFrame:
        """Return the bars as a long frame with ``BAR_COLUMNS`` (ts as UTC datetimes)."""
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(self.ts, utc=True),
                "symbol": self.symbol,
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                "timeframe": self.timeframe,
            }
        )

    def slice(self, start: int, stop: int) -> BarData:
        """Return rows [start, stop) (row indices, not timestamps)."""
        cols = (self.ts, self.symbol, self.open, self.high, self.low, self.close, self.volume)
        single = self.names is not None and len(self.names) == 1 and stop > start
        names = self.names if single else None
        return BarData(*(c[start:stop] for c in cols), self.timeframe, names)


def prepare_bars(bars: pd.DataFrame | Sequence[Bar], timeframe: str | None = None) -> BarData:
    """Validate and sort bars given as a long frame (``BAR_COLUMNS``) or ``Bar`` events."""
    if not isinstance(bars, pd.DataFrame):
        bars = pd.DataFrame(
            [(b.ts, b.symbol, b.open, b.high, b.low, b.close, b.volume) for b in bars],
            columns=list(BAR_COLUMNS),
        )
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise BacktestDataError(f"bars lack column(s): {', '.join(missing)}")
    if bars.empty:
        raise BacktestDataError("no bars to backtest")
    ts = pd.DatetimeIndex(bars["ts"])
    if ts.tz is None:
        raise BacktestDataError("bar timestamps must be timezone-aware (UTC)")
    stamps = ts.tz_convert(UTC).asi8.astype(np.int64) * _ns_factor(ts)
    codes, names = _symbol_codes(bars["symbol"])
    steps = np.diff(stamps)
    order = None if _sorted_unique(steps, codes) else np.lexsort((codes, stamps))
    if order is not None:
        stamps, codes = stamps[order], codes[order]
        steps = np.diff(stamps)
        if not _sorted_unique(steps, codes):
            raise BacktestDataError("duplicate (ts, symbol) bars")
    prices = [bars[c].to_numpy(dtype=float) for c in _PRICE_COLUMNS]
    if order is not None:
        prices = [p[order] for p in prices]
    if len(names) == 1:  # one symbol (the usual case): no gather through the codes
        symbols = np.empty(codes.size, dtype=object)
        symbols.fill(names[0])
    else:
        symbols = np.asarray(names, dtype=object)[codes]
    tf = timeframe or _timeframe_of(bars, steps)
    return BarData(stamps, symbols, *prices, tf, tuple(str(n) for n in names))


def _symbol_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Return each row's index into the distinct symbols (as strings, sorted) and those."""
    values = column.to_numpy()
    if values.size and values.dtype == object and isinstance(values[0], str):
        first = values[0]
        # One symbol (the usual case): no hashing each row. ``list.count`` compares by identity
        # first (one object repeated, as a column set from a scalar holds), then by value.
        if values.tolist().count(first) == values.size:
            return np.zeros(values.size, dtype=np.intp), [first]
    codes, names = pd.factorize(column.astype(str), sort=True)
    return codes, [str(n) for n in names]


def _sorted_unique(steps: np.ndarray, codes: np.ndarray) -> bool:
    """Return True if rows are strictly ordered by (ts, symbol): sorted and no duplicates.

    ``steps``: the differences of consecutive timestamps.
    """
    if bool((steps > 0).all()):  # one bar a timestamp, ascending: codes do not matter
        return True
    return bool(np.all((steps > 0) | ((steps == 0) & (np.diff(codes) > 0))))


def _ns_factor(ts: pd.DatetimeIndex) -> int:
    unit = getattr(ts, "unit", "ns")
    return {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]


def _timeframe_of(bars: pd.DataFrame, steps: np.ndarray) -> str:
    """Return the bars' timeframe: their column's, else the shortest step between the sorted
    timestamps (``steps``: their differences)."""
    if "timeframe" in bars.columns:
        values = set(bars["timeframe"].astype(str))
        if len(values) != 1:
            raise BacktestDataError(f"bars mix timeframes {sorted(values)}")
        return values.pop()
    if steps.size and steps.min() <= 0:  # several symbols a timestamp
        steps = steps[steps > 0]
    if steps.size == 0:
        raise BacktestDataError("cannot infer the timeframe of a single bar; pass timeframe")
    seconds = int(steps.min() // 1_000_000_000)
    for name, secs in TIMEFRAME_SECONDS.items():
        if secs == seconds:
            return name
    raise BacktestDataError(f"bar spacing of {seconds}s matches no timeframe; pass timeframe")


def periods_per_year(timeframe: str) -> float:
    """Return how many bars of ``timeframe`` a 24/7 market has in a year."""
    return _YEAR_SECONDS / TIMEFRAME_SECONDS[timeframe]


def run_calendar(config: BacktestConfig, data: BarData) -> Calendar:
    """Return the calendar a run's metrics annualise with: the configured periods per year,
    else the one the bars' timestamps follow."""
    if config.periods_per_year:
        return Calendar("given", float(config.periods_per_year))
    return infer_calendar(data.ts, data.timeframe)


@dataclass(slots=True)
class _Slot:
    """A strategy waiting to be added to a run."""

    strategy: Strategy
    symbols: tuple[str, ...] | None
    strategy_id: str | None


class BacktestRunner:
    """Run strategies over historical events through the live OMS, venue and portfolio."""

    def __init__(
        self,
        config: BacktestConfig | None = None,
        *,
        hook: PreTradeHook | None = None,
        sparse: bool = True,
    ):
        self.config = config or BacktestConfig()
        self.hook = hook
        self.sparse = sparse  # False: replay every bar even when the sparse replay applies
        self._slots: list[_Slot] = []

    def add(
        self,
        strategy: Strategy,
        *,
        symbols: Iterable[str] | None = None,
        strategy_id: str | None = None,
    ) -> BacktestRunner:
        """Add ``strategy`` (only on ``symbols`` if given); return self for chaining."""
        self._slots.append(_Slot(strategy, tuple(symbols) if symbols else None, strategy_id))
        return self

    def run(
        self,
        bars: pd.DataFrame | Sequence[Bar] | BarData,
        *,
        trades: Iterable[Trade] = (),
        books: Iterable[BookSnapshot] = (),
        quotes: Iterable[Quote] = (),
        predictions: Iterable[Prediction] = (),
        progress: ProgressCallback | None = None,
        progress_every: int = 10_000,
        trial_sharpes: Sequence[float] | None = None,
    ) -> BacktestResult:
        """Replay the events and return the result (see the module docstring for ordering)."""
        if not self._slots:
            raise BacktestConfigError("add at least one strategy before running")
        if progress_every < 1:
            raise BacktestConfigError("progress_every must be >= 1")
        with quiet_collector():
            data = bars if isinstance(bars, BarData) else prepare_bars(bars, self.config.timeframe)
            session = _Session(self, data)
            trades = list(trades)
            session.has_prints = bool(trades)  # stops then act on the prints, as in runtrader
            extras = _extra_streams(trades, books, quotes, predictions)
            if extras:
                session.drive_merged(extras, progress, progress_every)
            else:
                with gc_paused():  # built-in strategies only: see ``gc_paused``
                    plan = self._sparse_plan(data)
                    if plan is not None:
                        session.drive_sparse(plan, progress, progress_every)
                if plan is None:
                    session.drive_bars(progress, progress_every)
            with gc_paused():
                return session.finish(trial_sharpes)

    def _sparse_plan(self, data: BarData) -> SparsePlan | None:
        """Return the sparse replay's plan when it applies (see ``sparse``), else None."""
        model = FillModel(self.config.fill_model)
        if not self.sparse or self.hook is not None or model is FillModel.BOOK:
            return None
        if self.config.stop_rules:  # stops act on every bar, not only on the strategy's
            return None
        return build_plan(
            data.ts,
            data.symbol,
            data.close,
            [(s.strategy, s.symbols) for s in self._slots],
            names=data.symbols,
            columns={
                "ts": data.ts,
                "open": data.open,
                "high": data.high,
                "low": data.low,
                "volume": data.volume,
            },
        )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a run builds what it keeps.

    The sparse replay and ``finish`` allocate orders, fills, events and round trips that all
    stay reachable until the run returns, so collector passes over them find nothing while
    costing a growing share of the run; reference counting still frees everything else at once.
    Only built-in code runs there (strategies with decision tables). The full replays keep the
    collector on: a strategy's own code runs on every bar there, and whatever cycles it leaves
    (a caught exception and its traceback, say) must not pile up for the whole run.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


GC_YOUNG_OBJECTS = 10_000  # the collector's first threshold during a run (Python's is 700)
_collector_lock = threading.Lock()
_collector_runs = 0  # runs inside ``quiet_collector`` now (threads of one process)
_collector_saved: tuple[int, ...] = ()  # the thresholds to put back when the last one ends
_collector_froze = False  # whether the first of them froze what existed (to unfreeze at the end)


@contextmanager
def quiet_collector() -> Iterator[None]:
    """Keep the cyclic collector on during a run, but off what existed before it and less often.

    Whatever the process held when the run began (the modules, the caller's frames, the bars)
    outlives the run: frozen, the full collections a long run triggers no longer walk it. And
    the young generation holds ``GC_YOUNG_OBJECTS`` instead of 700, so the orders, fills and
    state a run keeps are promoted, and walked again, in fewer passes (as ``runtrader``'s
    ``quiet_collector``). Cycles a strategy leaves are still collected. Put back as it was
    when the last concurrent run ends (freezing and thresholds are process-wide).
    """
    global _collector_runs, _collector_saved, _collector_froze
    with _collector_lock:
        if _collector_runs == 0:
            _collector_saved = gc.get_threshold()
            # A process that froze its own objects (runtrader) keeps them as it froze them.
            _collector_froze = gc.get_freeze_count() == 0
            if _collector_froze:
                gc.freeze()
            young = _collector_saved[0]
            if young:  # 0: automatic collection is off, and stays off
                gc.set_threshold(max(GC_YOUNG_OBJECTS, young), *_collector_saved[1:])
        _collector_runs += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_runs -= 1
            if _collector_runs == 0:
                gc.set_threshold(*_collector_saved)
                if _collector_froze:
                    gc.unfreeze()


def run_backtest(
    strategy: Strategy | Sequence[Strategy],
    bars: pd.DataFrame | Sequence[Bar] | BarData,
    config: BacktestConfig | None = None,
    *,
    hook: PreTradeHook | None = None,
    sparse: bool = True,
    **kwargs: Any,
) -> BacktestResult:
    """Run one or several strategies over ``bars`` (keywords as in ``BacktestRunner.run``)."""
    runner = BacktestRunner(config, hook=hook, sparse=sparse)
    for s in [strategy] if isinstance(strategy, Strategy) else strategy:
        runner.add(s)
    return runner.run(bars, **kwargs)


_BOOK, _QUOTE, _BAR, _TRADE, _PREDICTION = range(5)  # tie order at equal times
_BUY = OrderSide.BUY


def _keyed(events: list[Any], priority: int) -> Iterator[tuple[int, int, int, Any]]:
    return ((epoch_ns(e.ts) // 1000, priority, i, e) for i, e in enumerate(events))


def _extra_streams(
    trades: Iterable[Trade],
    books: Iterable[BookSnapshot],
    quotes: Iterable[Quote],
    predictions: Iterable[Prediction],
) -> list[Iterator[tuple[int, int, int, Any]]]:
    """Key extra events by (time µs, tie priority, sequence) for merging; skip empty streams."""
    out = []
    for priority, stream in (
        (_BOOK, books),
        (_QUOTE, quotes),
        (_TRADE, trades),
        (_PREDICTION, predictions),
    ):
        events = sorted(stream, key=lambda e: e.ts)
        if events:
            out.append(_keyed(events, priority))
    return out


class _Session:
    """One run: the trading stack, the data and what is recorded."""

    def __init__(self, owner: BacktestRunner, data: BarData) -> None:
        cfg = owner.config
        self.config = cfg
        self.data = data
        self.hook = owner.hook
        self.first, self.last = to_datetime(int(data.ts[0])), to_datetime(int(data.ts[-1]))
        self.venue = BacktestVenue(cfg.fill_config())
        self.portfolio = Portfolio(
            cfg.account, cfg.initial_cash, ts=self.first, margin=cfg.margin()
        )
        self.oms = OrderManager(
            self.venue,
            hook=owner.hook,
            portfolios=[self.portfolio],
            id_factory=SequentialIds("b"),
        )
        self.recorder = _Recorder()
        self.oms.add_listener(self.recorder)
        self.stops: StopEnforcer | None = None
        self.has_prints = False
        if cfg.stop_rules:
            # runtrader's enforcer: ATR from this run's bars, exits as reduce-only market orders.
            self.stops = StopEnforcer(cfg.account, cfg.stop_rules, atr_timeframe=data.timeframe)
            self.oms.add_listener(self.stops)
        self.runner = StrategyRunner(
            self.oms, history_size=cfg.history_size, id_factory=SequentialIds("o")
        )
        for slot in owner._slots:
            self.runner.add(
                slot.strategy, cfg.account, strategy_id=slot.strategy_id, symbols=slot.symbols
            )
        # After each timestamp (full replay): floats, as the result's curve holds them.
        self.equity: list[float] = []
        self.equity_curve: np.ndarray | None = None  # the same, computed (sparse replay)
        self.in_market: np.ndarray | None = None  # per timestamp, from its state log (sparse)
        # Each fill's bar among its symbol's, when the replay knew it (one symbol, next-open
        # fills): the result then needs no search by time (``round_trips_traded(bars=)``).
        self.fill_bars: list[int] | None = None
        self.risk_events: list[Any] = []
        ts = data.ts
        self.group_end = np.append(ts[1:] != ts[:-1], True)  # last bar of its timestamp
        self.runner.start(self.first)

    def bars(self) -> Iterator[Bar]:
        """Return the bars as ``Bar`` events, built lazily."""
        return bar_events(self.data)

    def bar_handler(self, prints: bool = False) -> Callable[[Bar], None]:
        """Return the per-bar step: the strategy runner's, then ``after_bar``'s."""
        on_bar, after = self.runner.on_bar, self.after_bar(prints)
        if after is None:
            return on_bar

        def step(bar: Bar) -> None:
            on_bar(bar)
            after(bar)

        return step

    def after_bar(self, prints: bool = False) -> Callable[[Bar], None] | None:
        """Return what runs once the strategy runner processed a bar (None: nothing).

        With stops and no trade prints (``prints``), each bar's close is shown to the stop
        enforcer as a print at the bar's end, after the strategies decided. Under fills at the
        close, positions are re-marked at the close.
        """
        steps = []
        if self.stops is not None and not prints:
            steps.append(self._stops_at_close)
        if FillModel(self.config.fill_model) is not FillModel.NEXT_OPEN:
            steps.append(self._remark_at_close)
        if len(steps) < 2:
            return steps[0] if steps else None

        def both(bar: Bar) -> None:
            for step in steps:
                step(bar)

        return both

    def _remark_at_close(self, bar: Bar) -> None:
        # Fills after the close leave a position marked at its (slipped) fill price; equity
        # after a bar is measured at the bar's close.
        if bar.symbol in self.portfolio.positions:
            self.portfolio.mark_at(bar.symbol, bar.close)

    def _stops_at_close(self, bar: Bar) -> None:
        """Show the stop enforcer the bar, then its close as a print at the bar's end."""
        stops, oms = self.stops, self.oms
        assert stops is not None
        stops.on_bar(bar)
        end = bar.ts + timedelta(seconds=TIMEFRAME_SECONDS[self.data.timeframe])
        close = Trade(bar.symbol, end, bar.close, 0.0, venue="backtest")
        for intent in stops.on_trade(oms, close):
            oms.submit(intent, end)

    def on_print(self, trade: Trade) -> None:
        """Process a trade print as runtrader's session does: strategies, then stops."""
        self.runner.on_trade(trade)
        if self.stops is not None:
            for intent in self.stops.on_trade(self.oms, trade):
                self.oms.submit(intent, trade.ts)

    def drive_bars(self, progress: ProgressCallback | None, every: int) -> None:
        """Replay bars only: the fast loop (the runner's ``replay_bars``)."""
        after = self.after_bar()
        risk = self._risk_step if self._has_risk_loop() else None
        chunk = every if progress is not None else len(self.data)
        # One bar per timestamp, nothing after it, every fill inside the venue's bar step.
        logged = after is None and risk is None and bool(self.group_end.all())
        if logged and FillModel(self.config.fill_model) is FillModel.NEXT_OPEN:
            self._drive_logged(progress, chunk)
            return
        ends = self.group_end.tolist()
        record, estimate = self.equity.append, self.portfolio.equity_estimate

        def step(row: int, bar: Bar) -> None:
            if after is not None:
                after(bar)
            if ends[row]:
                if risk is not None:
                    risk(bar)
                record(estimate())

        self._replay(progress, chunk, step)

    def _replay(
        self,
        progress: ProgressCallback | None,
        chunk: int,
        after: Callable[[int, Bar], None],
        watch: list[Fill] | None = None,
    ) -> None:
        """Replay every bar through the strategy runner (``after`` and ``watch`` as in its
        ``replay_pairs``), ``chunk`` bars between progress reports."""
        pairs = bar_pairs(self.data)
        replay, done, total = self.runner.replay_pairs, 0, len(self.data)
        while done < total:
            n = min(chunk, total - done)
            part = pairs if done + n == total else islice(pairs, n)
            replay(part, after=after, watch=watch, start=done)
            done += n
            if progress is not None:
                progress(done, total)

    def _drive_logged(self, progress: ProgressCallback | None, chunk: int) -> None:
        """Replay, logging the account after each bar that had fills; compute the equity curve.

        Under next-open fills every fill happens in the venue's step of a bar of its symbol,
        before the OMS marks that symbol at the bar's close, and no mark comes later: the equity
        after a bar is the logged cash plus each position at its symbol's latest close, which
        ``sparse.equity_by_row`` computes for all bars at once (as the sparse replay's curve),
        instead of an ``equity_estimate`` a bar.
        """
        portfolio = self.portfolio
        flag = _FillFlag()
        self.oms.add_listener(flag)
        filled = flag.fills
        log = StateLog([-1], [portfolio.cash], [_quantities(portfolio)])
        rows: list[int] | None = [] if len(self.data.symbols) == 1 else None  # ``fill_bars``

        def record(row: int, bar: Bar) -> None:
            if rows is not None:
                rows.extend([row] * len(filled))
            filled.clear()
            log.record(row, portfolio.cash, _quantities(portfolio))

        self._replay(progress, chunk, record, watch=filled)
        self.oms.listeners.remove(flag)
        data = self.data
        self.fill_bars = _exact_rows(data.ts, rows)
        single = len(data.symbols) == 1
        curve, counts, _ = equity_by_row(log, data.symbol, data.close, single=single)
        self.equity_curve = curve
        # The state after a bar is the one logged after its fills: whether a position was open
        # after each bar, without a pass over the fills (as the sparse replay's).
        self.in_market = np.repeat(log.holding(), counts)

    def drive_merged(
        self,
        extras: list[Iterator[tuple[int, int, int, Any]]],
        progress: ProgressCallback | None,
        every: int,
    ) -> None:
        """Replay bars merged in time with prints, books, quotes and predictions."""
        tf_us = TIMEFRAME_SECONDS[self.data.timeframe] * 1_000_000
        ends_us = (self.data.ts // 1000 + tf_us).tolist()
        flags = self.group_end.tolist()
        bar_items = (
            (end, _BAR, i, (bar, flag))
            for i, (end, bar, flag) in enumerate(zip(ends_us, self.bars(), flags, strict=True))
        )
        runner, total, done = self.runner, len(self.data), 0
        on_bar = self.bar_handler(prints=self.has_prints)
        risk = self._risk_step if self._has_risk_loop() else None
        handlers = {_BOOK: runner.on_book, _QUOTE: runner.on_quote, _TRADE: self.on_print}
        handlers[_PREDICTION] = runner.on_prediction
        for _, priority, _, item in heapq.merge(bar_items, *extras):
            if priority != _BAR:
                handlers[priority](item)
                continue
            bar, end = item
            on_bar(bar)
            done += 1
            if end:
                if risk is not None:
                    risk(bar)
                self.equity.append(self.portfolio.equity_estimate())
            if progress is not None and (done % every == 0 or done == total):
                progress(done, total)

    def drive_sparse(self, plan: SparsePlan, progress: ProgressCallback | None, every: int) -> None:
        """Visit only the bars where something can happen (``sparse``); compute the equity."""
        cfg = self.config
        next_open = FillModel(cfg.fill_model) is FillModel.NEXT_OPEN
        replay = SparseReplay(
            plan,
            self.data,
            self.runner,
            self.oms.open_order_book(cfg.account),
            self.portfolio,
            self.recorder.fills,
            account=cfg.account,
            remark_close=FillModel(cfg.fill_model) is FillModel.CLOSE,
            fill_rows=next_open,  # every fill stamped with the start of the bar visited
        )
        replay.run(progress, every)
        self.fill_bars = _exact_rows(self.data.ts, replay.fill_rows)
        ends = None if self.group_end.all() else self.group_end  # None: every row ends its time
        curve = replay.finish()
        self.equity_curve = curve if ends is None else curve[ends]
        if next_open:
            # Every fill is stamped with the start of the bar it happens in, so the state after
            # a bar is that bar's: the log gives ``_in_market`` without a pass over the fills.
            held = replay.in_market
            self.in_market = held if ends is None else held[ends]  # type: ignore[index]

    def _has_risk_loop(self) -> bool:
        hook = self.hook
        return hook is not None and hasattr(hook, "check_account")

    def _risk_step(self, bar: Bar) -> None:
        """Evaluate account loss limits on the new marks and apply requested mode changes."""
        hook: Any = self.hook
        now = bar.ts + timedelta(seconds=TIMEFRAME_SECONDS[bar.timeframe])
        oms = self.oms
        account = self.config.account
        view = self.portfolio.view(oms.mode(account), len(oms.open_orders(account)))
        hook.check_account(view, now)
        for change in hook.drain_mode_changes():
            oms.set_mode(change.account, change.mode, now)
        self.risk_events.extend(hook.drain_events())

    def finish(self, trial_sharpes: Sequence[float] | None) -> BacktestResult:
        """Stop the strategies and assemble the result."""
        data = self.data
        tf = timedelta(seconds=TIMEFRAME_SECONDS[data.timeframe])
        self.runner.stop(self.last + tf)
        # One bar a timestamp (the usual case): the bars' own times, which the index copies.
        stamps = data.ts if bool(self.group_end.all()) else data.stamps()
        index = pd.DatetimeIndex(stamps.view("datetime64[ns]"), tz=UTC)
        curve = self.equity_curve
        if curve is None:
            curve = np.array(self.equity, dtype=float)
        equity = pd.Series(curve, index=index, name="equity")
        prices = data.closes(index)  # the same bar times: built once
        fills = self.recorder.fills
        symbols = list(prices.columns)
        one = len(symbols) == 1
        starts = {s: data.ts if one else data.ts[data.symbol == s] for s in symbols}
        last = {s: to_decimal(_last_close(data, s, one)) for s in symbols}
        trades, traded, fill_bars = round_trips_traded(
            fills, bar_starts=starts, last_prices=last, bars=self.fill_bars if one else None
        )
        benchmark = _buy_and_hold(prices, float(self.config.initial_cash))
        calendar = run_calendar(self.config, data)
        years = elapsed_years(data.ts, data.timeframe)
        closed = [t for t in trades if not t.is_open]
        metrics = summarize(
            equity.to_numpy(),
            initial=float(self.config.initial_cash),
            periods_per_year=calendar.periods_per_year,
            years=years,
            trade_pnls=[float(t.pnl) for t in closed],
            trade_returns=[t.return_pct for t in closed],
            benchmark_returns=_returns_with_start(benchmark, float(self.config.initial_cash)),
            in_market=self.in_market
            if self.in_market is not None
            else _in_market(fills, index, symbols, fill_bars if one else None),
            turnover=_turnover(traded, equity),
            trial_sharpes=trial_sharpes,
        )
        return BacktestResult(
            equity=equity,
            trades=trades,
            orders=list(self.recorder.orders.values()),
            fills=list(fills),
            metrics=metrics,
            benchmark=benchmark,
            initial_cash=self.config.initial_cash,
            final=self.portfolio.snapshot(self.last + tf),
            bars=len(data),
            prices=prices,
            risk_events=self.risk_events,
            calendar=calendar,
            years=years,
        )


def _exact_rows(stamps: np.ndarray, rows: list[int] | None) -> list[int] | None:
    """Return ``rows`` (each fill's row, its fill stamped with the row's start) if they are
    the bars a search by the fills' times finds: fills are stamped to the microsecond, so a
    row starting between two microseconds is found one bar earlier (then None: search)."""
    if rows is None or (rows and bool((stamps[rows] % 1000).any())):
        return None
    return rows


def _last_close(data: BarData, symbol: str, only: bool) -> float:
    """Return ``symbol``'s last known close (``only``: every bar is its)."""
    closes = data.close if only else data.close[data.symbol == symbol]
    if np.isnan(closes[-1]):
        closes = closes[~np.isnan(closes)]
    return float(closes[-1])


def _buy_and_hold(prices: pd.DataFrame, initial: float) -> pd.Series:
    """Return the equity of holding every symbol equally weighted from the first close."""
    values = prices.to_numpy(dtype=float)
    if np.isnan(values).any():
        values = prices.ffill().bfill().to_numpy(dtype=float)
    growth = values / values[0]
    mean = growth[:, 0] if growth.shape[1] == 1 else growth.mean(axis=1)
    np.multiply(mean, initial, out=mean)  # mean * initial, in place (8 MB less at 1M bars)
    return pd.Series(mean, index=prices.index, name="benchmark")


def _returns_with_start(curve: pd.Series, initial: float) -> np.ndarray:
    return returns_from_equity(curve.to_numpy(dtype=float), initial)  # without temporaries


def _in_market(
    fills: Sequence[Fill],
    index: pd.DatetimeIndex,
    symbols: list[str],
    bars: list[int] | None = None,
) -> np.ndarray:
    """Return, per bar, whether any position was open after the bar's fills (exact).

    ``bars``: each fill's row in ``index`` when already known (one symbol: ``round_trips``').
    """
    held = np.zeros(index.size, dtype=bool)
    stamps = index.asi8
    for symbol in symbols:
        own = [f for f in fills if f.symbol == symbol]
        if not own:
            continue
        if bars is not None and len(own) == len(fills):
            at = np.asarray(bars, dtype=np.int64)
        else:
            at = np.searchsorted(stamps, [epoch_ns(f.ts) for f in own], side="right") - 1
        position, after = ZERO, []
        for fill in own:
            position += fill.quantity if fill.side is _BUY else -fill.quantity
            after.append(position != 0)
        # The state after a bar is the one after its last fill, carried forward.
        bars = np.clip(at, 0, None)[::-1]
        unique, first = np.unique(bars, return_index=True)
        state = np.zeros(index.size, dtype=np.int8)  # 0: no fill, 1: flat after, 2: open
        state[unique] = np.asarray(after)[::-1][first] + 1
        seen = np.maximum.accumulate(np.where(state > 0, np.arange(index.size), -1))
        held |= (seen >= 0) & (state[np.maximum(seen, 0)] == 2)
    return held


def _turnover(traded: Decimal, equity: pd.Series) -> float:
    """Return traded notional (the fills' quantity × price, summed exactly) / average equity."""
    mean_equity = float(equity.mean()) if equity.size else 0.0
    if mean_equity <= 0:
        return float("nan")
    return float(traded) / mean_equity


__all__ = [
    "BarData",
    "BacktestConfig",
    "BacktestRunner",
    "BacktestResult",
    "ProgressCallback",
    "periods_per_year",
    "prepare_bars",
    "run_calendar",
    "run_backtest",
]
