"""The real-time trading runtime hosted by ``manage.py runtrader``.

One asyncio loop runs the whole path::

    feed → MarketDataPipeline (validate, aggregate) → StrategyRunner (strategies → intents)
         → RiskChecker (pre-trade hook) → OrderManager → PaperVenue → fills → Portfolio

Slow work never blocks matching: market data goes to the ``AsyncBatchWriter``; orders, fills,
positions, cash and snapshots are cut into ``TradingBatch``es on the loop and written by one
database thread in one transaction each; broadcasts go through a bounded queue (account messages
first, market states conflated) and are sent only after the batch that contains them committed.
A control poll (every second) reloads risk limits edited in the admin, applies trading-state
changes, picks up orders submitted through the API and honours cancel requests. State survives
SIGKILL: a restart reloads cash, positions and open orders, and continues.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, connections

from marketdata.adapters.base import FeedError
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar, BookSnapshot, Quote, Trade
from marketdata.pipeline import EventHorizon, MarketDataPipeline, QualityRecord
from marketdata.services import quality_event_record_rejected
from marketdata.storage import AsyncBatchWriter, WriterFailed
from monitoring.engine.health import component_register, component_unregister
from monitoring.engine.payloads import (
    FormingBars,
    bar_payload,
    book_payload,
    fill_payload,
    order_payload,
    portfolio_payload,
    quote_payload,
    trade_payload,
)
from monitoring.metrics import (
    ENGINE_HEARTBEAT,
    EngineMetrics,
    FeedMetrics,
    TimedPredictor,
    portfolio_snapshot_set,
    trading_state_set,
)
from monitoring.stream_hub import BundleRelay, apublish_bundle
from risk.engine.checks import RiskChecker
from risk.engine.enforcer import StopEnforcer
from risk.engine.events import ModeChangeRequest, RiskEventRecord, Severity
from trading.engine.algo_book import algo_metadata
from trading.engine.gate import ModeGate
from trading.engine.hooks import TradingMode
from trading.engine.oms import OrderManager
from trading.engine.orders import Order, OrderIntent
from trading.engine.runner import StrategyRunner
from trading.engine.session import TradingSession
from trading.engine.signals import Signal
from trading.engine.strategies import create_strategy
from trading.engine.venue import PaperVenue, VenueConfig
from trading.live_bridge import LiveVenueBridge, WriteAheadFailed
from trading.persistence import (
    PersistenceHealth,
    Recorder,
    TradingBatch,
    TradingStore,
    account_fence,
    as_json,
    db_error_detail,
    refused_for_good,
    refused_record,
    unsaved_dump,
)
from trading.runtime_control import ControlState, RuntimeControl
from trading.session_record import warmup_record

logger = logging.getLogger(__name__)

# Errors that mean "the database did not take it", as opposed to a bug in our code.
DB_ERRORS = (DatabaseError, InterfaceError)
RETRY_FIRST = 0.2  # seconds before the first retry of a failed write
RETRY_MAX = 5.0  # backoff cap: a recovered database is noticed within this
SHUTDOWN_WRITE_TIMEOUT = 30.0  # how long a stopping engine keeps trying to store what it holds
# How long writes may keep failing (an outage: the account reduces risk only meanwhile) before
# the engine stops, storing what it can and dumping the rest (``RRR_WRITE_OUTAGE_LIMIT``).
WRITE_OUTAGE_LIMIT = 300.0
# Market data waiting for the database: four of the writer's 5,000-row batches. A feed faster
# than the database is held back here (nothing dropped) instead of queueing in memory: with
# the writer's default of 100,000 events a 50-symbol soak's engine grew ~190 MB until it was full.
MD_QUEUE_EVENTS = 20_000
# A feed with events ready (a simulated market behind its pace, a socket's backlog) yields them
# without ever suspending: every this many events the loop runs its other tasks (the web server,
# the writers, the flush, control and broadcast tasks), which otherwise starved for seconds.
CONSUME_YIELD_EVERY = 50
# The broadcaster sends what waits in one layer message (a bundle of every channel's), at most
# BROADCAST_BATCH messages and one bundle each BROADCAST_EVERY seconds (the layer's copies at
# the pace Redis takes them, merged when behind: ``BundleRelay``): over Redis a send is
# three round trips and a web process's receive four, so one message per send got a loaded
# 50-symbol engine's out at a few a second, and one per channel outran the web process (its
# layer channel overflowed and dropped order notices).
BROADCAST_BATCH = 500
BROADCAST_EVERY = 0.02


@dataclass(slots=True, frozen=True)
class StrategySpec:
    """One strategy an engine runs on its account: its name (as ``resolve_strategy`` stores it),
    parameters, symbols (empty: the engine's) and id (None: the strategy's name)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    strategy_id: str | None = None


@dataclass(slots=True)
class RuntimeConfig:
    """What ``runtrader`` was asked to run."""

    account: str
    symbols: list[str]
    feed: str = "sim"
    strategy: str | None = None  # one strategy (with ``params``); or several in ``strategies``
    params: dict[str, Any] = field(default_factory=dict)
    # Several strategies on the one account, each stopped alone if it raises (not with strategy).
    strategies: list[StrategySpec] = field(default_factory=list)
    timeframe: str = "1m"
    duration: float | None = None
    flush_interval: float = 0.2
    snapshot_interval: float = 10.0
    heartbeat_interval: float = 15.0
    control_interval: float = 1.0
    stop_rules: list = field(default_factory=list)  # risk.engine.stops rules for every position
    stop_options: dict[str, Any] = field(default_factory=dict)  # how stop_rules were asked for
    model: str | None = None  # ML model name to run (None: any active model for the symbols)
    use_models: bool = False  # run active models on bars and hand predictions to strategies
    taker_fee_bps: Decimal = Decimal("10")
    maker_fee_bps: Decimal = Decimal("5")
    store_market_data: bool = True
    speed: float = 1.0  # the simulated market's pace (recorded: a sped-up session is marked)
    sim_start: datetime | None = None  # where the simulated clock starts (marketdata.sim_clock)
    metrics: bool = True  # Prometheus series (monitoring.metrics); off only to measure their cost
    # Seconds of failing writes before the engine stops (None: RRR_WRITE_OUTAGE_LIMIT, else 300).
    write_outage_limit: float | None = None

    def strategy_specs(self) -> list[StrategySpec]:
        """Return every strategy to run: ``strategies``, or the one of ``strategy``/``params``."""
        if self.strategy and self.strategies:
            raise ValueError("RuntimeConfig: give strategy or strategies, not both")
        if self.strategy:
            return [StrategySpec(self.strategy, dict(self.params))]
        return list(self.strategies)


@dataclass(slots=True)
class RunSummary:
    """Counts reported when the runtime stops."""

    events: int = 0
    bars: int = 0
    orders: int = 0
    fills: int = 0
    rejected: int = 0
    batches: int = 0
    broadcasts_dropped: int = 0
    broadcasts_conflated: int = 0  # market states replaced by a newer one before being sent
    restored_orders: int = 0
    warmup_bars: int = 0  # past bars shown to the strategies before going live
    suppressed_intents: int = 0  # strategy intents dropped because the account's mode forbids
    persist_errors: int = 0
    market_data: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as a dict."""
        return {name: getattr(self, name) for name in self.__slots__}


class TradingRuntime:
    """Wire feed, pipeline, strategies, risk, OMS, paper venue and persistence on one loop."""

    def __init__(
        self,
        config: RuntimeConfig,
        feed,
        *,
        channel_layer=None,
        live=None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.live = live  # a trading.adapters LiveVenue: orders go to an exchange
        self.feed = feed
        self.clock = clock
        self.layer = channel_layer
        self.summary = RunSummary()
        self.store = TradingStore(config.account)
        self.control = RuntimeControl(
            config.account,
            symbols=config.symbols,
            timeframe=config.timeframe,
            model_name=config.model,
            use_models=config.use_models,
        )
        self._model_ids: dict[str, int | None] = {}
        self.recorder = Recorder()
        self.stops = StopEnforcer(config.account, config.stop_rules)
        self.metrics = (
            EngineMetrics(config.account, events=lambda summary=self.summary: summary.events)
            if config.metrics
            else None
        )
        self.feed_metrics = (
            FeedMetrics(config.feed, symbols=config.symbols) if config.metrics else None
        )
        # Only subscribed symbols reach per-symbol state; live feeds' timestamps are checked
        # against this host's clock (the simulator runs ahead of it on purpose).
        self.pipeline = MarketDataPipeline(
            source=config.feed,
            symbols=config.symbols,
            horizon=None if config.feed == "sim" else EventHorizon(),
        )
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trading-db")
        self.md_writer: AsyncBatchWriter | None = None
        self.broadcasts = BroadcastQueue()
        # The chart's live bar: the engine timeframe's window, from trades, a few times a second.
        self.forming = FormingBars(
            config.timeframe, TIMEFRAME_SECONDS.get(config.timeframe, 60), time.monotonic
        )
        self.risk: RiskChecker | None = None
        self.oms: OrderManager | None = None
        self.runner: StrategyRunner | None = None
        self.bridge: LiveVenueBridge | None = None
        self.session: TradingSession | None = None
        self._now: datetime | None = None
        self._live_tasks: list[asyncio.Task] = []
        self._live_stop = asyncio.Event()
        self.gate: ModeGate | None = None
        self.persistence = PersistenceHealth()
        self._unsaved: TradingBatch | None = None  # cut but not yet stored; retried as one
        self._write_lock = asyncio.Lock()  # one write in flight, batches stored in order
        self._retry_at = 0.0  # monotonic time before which no write is attempted
        self._backoff = 0.0
        self._reduced_for_persistence = False
        self._failing_since = 0.0  # monotonic time of the first failed write of an outage
        self._outage_limit = write_outage_limit(config.write_outage_limit)
        self._refused: PersistenceRefused | None = None  # the database refused data: final
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None  # a background task's error: stops the run
        self._signals_seen: set[str] = set()  # external signals already shown to strategies

    # ----------------------------------------------------------------- setup

    async def _db(self, fn: Callable, *args):
        """Run ``fn`` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self.db, _with_db(fn), *args)

    async def setup(self) -> None:
        """Load state and limits from the database and build the engine."""
        state, control = await self._db(self._load)
        if self.live is not None:
            venue = self.bridge = LiveVenueBridge(self.live, persist=self._persist_order)
        else:
            venue = PaperVenue(
                VenueConfig(
                    taker_fee_bps=self.config.taker_fee_bps, maker_fee_bps=self.config.maker_fee_bps
                )
            )
        self.risk = RiskChecker(control.limits, lot_sizes=control.lot_sizes)
        self.oms = OrderManager(venue, hook=self.risk, listeners=[self.recorder, self.stops])
        self._metrics_attach()
        if self.bridge is not None:
            self.bridge.attach(self.oms)
        now = self.clock()
        self.oms.restore(
            self.config.account,
            cash=state.cash,
            positions=state.positions,
            open_orders=state.open_orders,
            now=now,
            realized_pnl=state.realized_pnl,
            fees=state.fees,
            peak_equity=state.peak_equity,
            day_start_equity=state.day_start_equity,
        )
        # The account's leverage and buying-power policy (default 1x: no borrowing).
        self.oms.set_margin(self.config.account, state.account.margin())
        self.summary.restored_orders = len(state.open_orders)
        self.oms.set_mode(self.config.account, TradingMode(control.mode), now)
        self.runner = StrategyRunner(self.oms, bars_to_venue=False)
        self.runner.gate = self.gate = ModeGate(self.oms)
        self.runner.sizer = control.sizer  # the account's sizing policy, not all-in
        self.runner.on_strategy_error = self._strategy_failed  # stop it alone, reduce, alert
        for spec in self.config.strategy_specs():  # all on the one account, stopped alone
            strategy = create_strategy(spec.name, **spec.params)
            symbols = list(spec.symbols) or self.config.symbols
            self.runner.add(
                strategy, self.config.account, strategy_id=spec.strategy_id, symbols=symbols
            )
        self.runner.algos.on_start = self._algo_started  # strategy parents: stored with children
        self.runner.start(now)
        await self._algos_restore(now)
        warmup = await self._warm_up(now)
        await self._db(
            self.control.record_session, "session_start", self._session_context(state, warmup)
        )
        self.session = TradingSession(
            self.oms,
            self.runner,
            self.config.account,
            timeframe=self.config.timeframe,
            risk=self.risk,
            stops=self.stops,
        )
        self._apply_models(control.models)
        logger.info(
            "runtime ready",
            extra={
                "account": self.config.account,
                "restored_orders": len(state.open_orders),
                "positions": len(state.positions),
                "cash": str(state.cash),
            },
        )

    def _metrics_attach(self) -> None:
        """Let the engine's metrics listen to the OMS (``setup``; the overhead bench too)."""
        if self.metrics is not None:
            self.metrics.reference_price = self.oms.venue.reference_price  # the OMS's, directly
            self.oms.add_listener(self.metrics)

    def _load(self):
        state = self.store.load()
        control = self.control.poll(force=True)
        return state, control

    async def _warm_up(self, now: datetime) -> list[Bar]:
        """Show the strategies the bars before now, so the first live bar is a decision.

        The simulated feed's own history (never stored), else the stored bars; what the
        strategies ask for meanwhile is dropped. Returns the bars shown (recorded for replays).
        """
        needed = self.runner.warmup_bars()
        if not needed:
            return []
        market = getattr(self.feed, "market", None)
        if self.config.feed == "sim" and market is not None:
            bars = simulated_history(market, self.config.symbols, self.config.timeframe, needed)
        else:
            bars = await self._db(self.control.stored_bars, needed, now)
        self.runner.warm_up(bars, now)
        self.summary.warmup_bars = len(bars)
        logger.info(
            "strategies warmed up",
            extra={"account": self.config.account, "bars": len(bars), "needed": needed},
        )
        return bars

    def _session_context(self, state, warmup: list[Bar]) -> dict:
        """What a replay needs to reproduce this session: configuration and starting state."""
        c = self.config
        return {
            "simulated": c.feed == "sim",
            "speed": c.speed,
            "sim_start": c.sim_start,
            "sizing": self.runner.sizer.as_dict() if self.runner.sizer is not None else None,
            "warmup": warmup_record(warmup),
            "account": c.account,
            "symbols": c.symbols,
            "feed": c.feed,
            "strategy": c.strategy,
            "params": c.params,
            "strategies": [
                {"name": s.name, "params": s.params, "symbols": list(s.symbols),
                 "strategy_id": s.strategy_id}
                for s in c.strategies
            ],
            "timeframe": c.timeframe,
            "stops": c.stop_options,
            "taker_fee_bps": c.taker_fee_bps,
            "maker_fee_bps": c.maker_fee_bps,
            "live": self.live is not None,
            "cash": state.cash,
            "positions": [
                {"symbol": p.symbol, "quantity": p.quantity, "avg_price": p.avg_price}
                for p in state.positions
            ],
            "open_orders": len(state.open_orders),
            "started_at": self.clock(),
        }

    # ----------------------------------------------------------------- run

    async def run(self, stop: asyncio.Event) -> RunSummary:
        """Run until ``stop`` is set, the duration elapses or the feed ends; then shut down.

        A periodic task that fails for a reason other than the database stops the engine and
        its error is raised here; database errors are retried (see ``_persist``).
        """
        self._stop = stop
        await self.setup()
        component_register(f"engine:{self.config.account}", self.health)
        if self.config.store_market_data:
            source = self.config.feed
            self.md_writer = AsyncBatchWriter(
                max_queue=MD_QUEUE_EVENTS,
                latency_window=10_000,  # every event's latency, kept for days, was 32 B each
                clock=time.monotonic,
                on_reject=lambda event, why: quality_event_record_rejected(
                    event=event, reason=why, source=source
                ),
            ).start()
        tasks = [
            asyncio.create_task(self._consume(stop), name="feed"),
            asyncio.create_task(self._every(self.config.flush_interval, self._flush, stop)),
            asyncio.create_task(self._every(self.config.snapshot_interval, self._snapshot, stop)),
            asyncio.create_task(self._every(self.config.heartbeat_interval, self._heartbeat, stop)),
            asyncio.create_task(self._every(self.config.control_interval, self._control, stop)),
            asyncio.create_task(self._every(self.config.control_interval, self._signals, stop)),
            asyncio.create_task(self._broadcaster(), name="broadcast"),
        ]
        live_tasks = []
        if self.bridge is not None:
            live_stop = self._live_stop = asyncio.Event()
            live_tasks = [
                asyncio.create_task(self.bridge.run(live_stop)),
                asyncio.create_task(self.bridge.reconcile_forever(live_stop)),
            ]
        # The exchange side and the broadcaster must never die unnoticed either: a broadcaster
        # that raised left clients without order and fill notices while the engine traded on.
        for task in [*live_tasks, tasks[-1]]:
            task.add_done_callback(lambda t, stop=stop: self._background_done(t, stop))
        self._live_tasks = live_tasks
        await self._guarded(self._heartbeat)
        watched = tasks[:-1]
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                [*watched, stopped], timeout=self.config.duration, return_when=FIRST_COMPLETED
            )
        finally:
            stop.set()
            await asyncio.gather(stopped, return_exceptions=True)
            failure = self._failure or _first_failure(watched)
            if isinstance(failure, FeedError):
                await self._feed_failed(failure)
            await self.shutdown(tasks)
        if failure is not None:
            raise failure
        return self.summary

    async def shutdown(self, tasks: list[asyncio.Task]) -> None:
        """Stop intake, persist everything, write a final snapshot.

        Nothing trades after the stop signal: the unfinished bar is never closed and shown to
        strategies, and whatever a strategy asks for from here on (``on_stop`` included) is
        dropped by the gate.
        """
        if self.gate is not None:
            self.gate.closed = True
        await self.feed.close()
        if self._live_tasks:  # let queued exchange calls finish, then stop polling
            self._live_stop.set()
            await asyncio.wait(self._live_tasks, timeout=15)
            for task in self._live_tasks:
                task.cancel()
        for task in tasks[:-1]:
            task.cancel()
        await asyncio.gather(*tasks[:-1], return_exceptions=True)
        now = self._now or self.clock()
        self.runner.stop(now)
        stored = await self._persist_before_exit()
        dump = None if stored else self._dump_unsaved()
        writer_failure = None
        if self.md_writer is not None:
            try:
                for bar in self.pipeline.flush(partial=False):  # stored, never traded
                    await self.md_writer.put(bar)
                stats = await self.md_writer.close()
                self.summary.market_data = {"stored": stats.written, "rejected": stats.rejected}
            except WriterFailed as exc:  # the trading state below is still stored
                writer_failure = exc
        self._feed_metrics_sync()  # the last events, rows and orders: no flush follows
        self.broadcasts.close()
        await asyncio.gather(tasks[-1], return_exceptions=True)
        context = self._heartbeat_context("stopped")
        await self._guarded(self._db, self.control.record_heartbeat, context)
        await self._guarded(
            self._db, self.control.record_session, "session_end", {**context, "ended_at": self._now}
        )
        await asyncio.get_running_loop().run_in_executor(self.db, connections.close_all)
        self.db.shutdown(wait=True)
        component_unregister(f"engine:{self.config.account}")
        if writer_failure is not None:
            raise writer_failure
        if not stored:
            held = (
                f"{self.persistence.unsaved_fills} fills and {self.persistence.unsaved_orders} "
                "orders not stored"
            )
            kept = f"kept in {dump}" if dump is not None else "not kept in a file (see the log)"
            if self._refused is not None:
                raise PersistenceRefused(
                    f"{self._refused}; the account is halted; {held}, {kept}", self._refused.record
                )
            raise PersistenceFailed(
                f"could not store {held} before exiting: {self.persistence.last_error}; {kept}"
            )

    def _dump_unsaved(self) -> Path | None:
        """Write what the database did not take to ``DATA_DIR/unsaved/`` (None: nothing held)."""
        batch = self._unsaved
        if batch is None:
            return None
        refused = self._refused
        try:
            path = unsaved_dump(
                batch,
                reason=str(refused) if refused is not None else self.persistence.last_error,
                refused=refused.record if refused is not None else None,
                directory=Path(settings.DATA_DIR) / "unsaved",
            )
        except OSError:
            logger.critical(
                "could not write the unsaved trading state to a file; it follows in full",
                exc_info=True,
                extra={"account": self.config.account, "unsaved": as_json(batch)},
            )
            return None
        logger.critical(
            "unsaved trading state (%d orders, %d fills) written to %s",
            len(batch.orders),
            len(batch.fills),
            path,
            extra={"account": self.config.account, "path": str(path)},
        )
        return path

    async def _persist_before_exit(self) -> bool:
        """Store everything held (with a final snapshot), retrying for a bounded time."""
        deadline = time.monotonic() + SHUTDOWN_WRITE_TIMEOUT
        snapshot = True
        while True:
            if await self._guarded(self._persist, snapshot=snapshot) and self.persistence.ok:
                await self._guarded(self._store_side_records)
                return True
            snapshot = False  # the snapshot is already held in the unsaved batch
            if self._refused is not None:
                # Final: the database refused a record of the batch, writing it again cannot
                # succeed. The risk event and the halt go in alone (their own transaction).
                await self._guarded(self._store_side_records)
                logger.critical(
                    "engine stopping at once with unsaved trading state: %s",
                    self._refused,
                    extra={"account": self.config.account, **self.persistence.as_dict()},
                )
                return False
            fence = account_fence(self.config.account)
            if fence is not None and fence.lost is not None:
                # Final: another engine owns the account, no retry can ever store this (before,
                # a fenced-out engine retried for SHUTDOWN_WRITE_TIMEOUT, ~30 s, before exiting).
                logger.critical(
                    "engine stopping at once with unsaved trading state: %s",
                    fence.lost,
                    extra={"account": self.config.account, **self.persistence.as_dict()},
                )
                return False
            if time.monotonic() >= deadline:
                logger.critical(
                    "engine stopping with unsaved trading state",
                    extra={"account": self.config.account, **self.persistence.as_dict()},
                )
                return False
            await asyncio.sleep(max(self._retry_at - time.monotonic(), RETRY_FIRST))

    async def _every(self, interval: float, fn, stop: asyncio.Event) -> None:
        """Call ``fn`` every ``interval`` seconds; database errors are absorbed and retried."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                await self._guarded(fn)

    async def _guarded(self, fn, *args, **kwargs):
        """Await ``fn``; a database error marks persistence failing instead of raising."""
        try:
            return await fn(*args, **kwargs)
        except DB_ERRORS as exc:
            self._persistence_failed(exc)
            return None

    # ----------------------------------------------------------------- market data

    async def _consume(self, stop: asyncio.Event) -> None:
        metrics, feed_metrics = self.metrics, self.feed_metrics
        received_symbol = None if feed_metrics is None else feed_metrics.received_symbols.append
        async for event in self.feed.events():
            if stop.is_set():
                return  # the stop signal came while this event was in flight: do not trade on it
            self.summary.events += 1  # also the metrics' event count (read when published)
            if self.summary.events % CONSUME_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a feed that never waits must not starve the loop
            received = getattr(self.feed, "last_received_at", None)
            outputs = self.pipeline.process(event)
            if metrics is not None:  # stores and a count, no call (FeedMetrics says why)
                metrics.tick_received = received
                feed_metrics.last_event = event
                try:
                    received_symbol(event.symbol)
                except AttributeError:  # a malformed frame has none
                    received_symbol("")
                if outputs and outputs[0].__class__ is QualityRecord:
                    feed_metrics.findings(getattr(event, "symbol", ""), outputs)
            for out in outputs:
                await self._emit(out, received)
            self._drain_risk()
            if stop.is_set():
                return

    async def _emit(self, event: object, received: float | None = None) -> None:
        """Store a pipeline output and show it to the engine."""
        if self.md_writer is not None:
            await self.md_writer.put(event, received)
        bar = self.session.on_event(event)
        self._now = self.session.now
        if bar is not None:
            self.summary.bars += 1
        if self.layer is not None:
            self._publish_market(event)

    def _publish_market(self, event: object) -> None:
        """Fan a market event out to ``market.<symbol>`` (bars of every timeframe, closed)."""
        channel = f"market.{getattr(event, 'symbol', '')}"
        # Payloads are built when sent (``BroadcastQueue``): most market data a loaded engine
        # publishes is conflated or dropped, and building it was a sixth of a soak's engine CPU.
        if isinstance(event, Trade):
            self._publish(channel, "trade", partial(trade_payload, event))
            if event.symbol and event.ts.tzinfo is not None:
                forming = self.forming.on_trade(event)
                if forming is not None:
                    self._publish(channel, "bar", forming)
        elif isinstance(event, Quote):
            self._publish(channel, "quote", partial(quote_payload, event))
        elif isinstance(event, BookSnapshot):
            self._publish(channel, "book", partial(book_payload, event))
        elif isinstance(event, Bar):
            self._publish(channel, "bar", bar_payload(event, closed=True))

    # ----------------------------------------------------------------- risk

    def _drain_risk(self) -> None:
        """Apply mode changes the risk engine asked for; queue its events for storage."""
        if self.session is None:
            return
        events, changes = self.session.drain_risk()
        if self.gate is not None:
            events += [_quiet_event(episode) for episode in self.gate.drain()]
        if not changes and not events:
            return
        for change in changes:
            self._publish(
                "risk",
                "state",
                {"account": change.account, "state": change.mode.value, "reason": change.reason},
            )
        for event in events:
            self._publish(
                "risk",
                "risk_event",
                {
                    "account": self.config.account,
                    "kind": event.limit_kind,
                    "severity": event.severity.value,
                    "message": event.message,
                    "ts": event.ts.isoformat() if event.ts else None,
                },
            )
        self.control.queue_risk(events, changes)

    def _strategy_failed(self, account: str, strategy: str, error: Exception) -> None:
        """A strategy raised: it is stopped (the runner), its account moves to reducing, and a
        critical risk event (stored with an alert) names the file, line and bar."""
        now = self._now or self.clock()
        reason = f"strategy {strategy!r} stopped: {error}"[:500]
        logger.error("strategy raised; stopped, account moves to reducing",
                     extra={"account": account, "strategy": strategy, "error": str(error)})
        changes = []
        if self.oms is not None and self.oms.mode(account) is TradingMode.ACTIVE:
            self.oms.set_mode(account, TradingMode.REDUCING, now)
            changes = [ModeChangeRequest(account, TradingMode.REDUCING, reason, "strategy", now)]
        event = RiskEventRecord(
            Severity.CRITICAL, "strategy", reason, {"strategy": strategy}, account, now
        )
        self.control.queue_risk([event], changes)
        self._publish(
            "risk",
            "risk_event",
            {"account": account, "kind": "strategy", "severity": Severity.CRITICAL.value,
             "message": reason, "ts": now.isoformat()},
        )

    async def _feed_failed(self, exc: FeedError) -> None:
        """A feed that cannot deliver leaves the account reducing, with a risk event saying why."""
        now = self._now or self.clock()
        account = self.config.account
        reason = f"market-data feed {self.config.feed!r} failed: {exc}"[:500]
        logger.error("feed failed; account moves to reducing", extra={"account": account})
        changes = []
        if self.oms is not None and self.oms.mode(account) is TradingMode.ACTIVE:
            self.oms.set_mode(account, TradingMode.REDUCING, now)
            changes = [ModeChangeRequest(account, TradingMode.REDUCING, reason, "feed", now)]
        event = RiskEventRecord(
            Severity.CRITICAL, "feed", reason, {"feed": self.config.feed}, account, now
        )
        self.control.queue_risk([event], changes)
        self._publish(
            "system",
            "feed",
            {"account": account, "feed": self.config.feed, "status": "failed", "message": reason},
        )

    # ----------------------------------------------------------------- persistence

    async def _flush(self) -> None:
        """Store what changed, then risk events and predictions (only after the trades)."""
        self._feed_metrics_sync()
        if await self._persist():
            await self._store_side_records()
            self._persistence_ok()  # also after a failure of a poll or heartbeat alone

    def _feed_metrics_sync(self) -> None:
        """Publish the batched series, the feed's totals (rows stored, reconnects) and lag."""
        if self.feed_metrics is not None:
            stats = getattr(self.feed, "stats", None)
            self.feed_metrics.sync(
                stored=self.md_writer.stats.written_by_symbol if self.md_writer else None,
                reconnects=getattr(stats, "reconnects", None),
            )

    async def _snapshot(self) -> None:
        """Store a portfolio snapshot together with the fills and cash it reflects."""
        await self._persist(snapshot=True)
        if self.metrics is not None:
            account = self.config.account
            portfolio_snapshot_set(self.oms.portfolio(account).snapshot(self._now or self.clock()))
            trading_state_set(account, self.oms.mode(account).value)

    async def _persist(self, *, snapshot: bool = False) -> bool:
        """Cut what changed on the loop and store everything unsaved in one transaction.

        A failed write loses nothing: the batch stays unsaved, later changes merge into it, and
        it is retried with backoff until the database takes it. Cash is only ever written with
        the fills and positions that explain it. Returns True when nothing is left unsaved.
        """
        async with self._write_lock:
            self._cut(snapshot)
            pending = self._unsaved
            if self._refused is not None:
                return False  # held for the dump (``shutdown``): never written again
            if pending is None:
                return True
            if time.monotonic() < self._retry_at:
                return False
            try:
                await self._db(self.store.write, pending)
            except DB_ERRORS as exc:
                refused = None
                if refused_for_good(exc):  # which record, and why (a probe, rolled back)
                    refused = await self._db(refused_record, self.store, pending)
                self._persistence_failed(exc, refused)
                return False
            self._unsaved = None
            self.recorder.stored(pending)  # finished orders are forgotten once stored
            self.persistence.unsaved_fills = self.persistence.unsaved_orders = 0
            self.summary.batches += 1
            self.summary.fills += len(pending.fills)
        self._persistence_ok()
        self._publish_batch(pending)
        return True

    def _cut(self, snapshot: bool) -> None:
        """Move what the recorder holds (and a snapshot) into the unsaved batch."""
        self._drain_risk()
        now = self._now or self.clock()
        batch = self.recorder.cut(self.oms, self.config.account, now)
        if snapshot:
            portfolio = self.oms.portfolio(self.config.account)
            portfolio.roll_day(now)
            batch.snapshots.append(portfolio.snapshot(now))
            # Stored marks and unrealised P&L follow the engine at the snapshot interval, not
            # only when a symbol fills: every held position goes in with the snapshot.
            cut = {p.symbol for p in batch.positions}
            batch.positions += [
                pos.snapshot()
                for symbol, pos in portfolio.positions.items()
                if symbol not in cut and pos.quantity
            ]
        self.summary.orders = self.recorder.new_orders
        self.summary.rejected = self.recorder.rejected
        if self.gate is not None:
            self.summary.suppressed_intents = self.gate.suppressed
        if self._unsaved is None:
            self._unsaved = batch if batch else None
        else:
            self._unsaved.absorb(batch)
        if self._unsaved is not None:
            self.persistence.unsaved_fills = len(self._unsaved.fills)
            self.persistence.unsaved_orders = len(self._unsaved.orders)

    async def _store_side_records(self) -> None:
        """Store queued risk events and predictions; a failure keeps them queued."""
        await self._db(self.control.flush_risk)
        if not self.session.predictions:
            return
        predictions, self.session.predictions = self.session.predictions, []
        try:
            await self._db(self.control.store_predictions, predictions, dict(self._model_ids))
        except BaseException:
            self.session.predictions[:0] = predictions
            raise
        for p in predictions:
            self._publish(
                f"market.{p.symbol}",
                "prediction",
                {
                    "symbol": p.symbol,
                    "ts": p.ts.isoformat(),
                    "probability_up": p.value,
                    "expected_return": p.expected_return,
                    "confidence": p.confidence,
                    "model": p.model,
                },
            )

    def _persistence_failed(self, exc: BaseException, refused: dict | None = None) -> None:
        """Back off, and while the database refuses writes let the account only reduce risk.

        Data the database refuses for good (``refused_for_good``: ``refused`` names the record
        when known) halts the account and stops the engine (``_write_refused``); an outage
        longer than the limit stops it too (``_outage_check``).
        """
        health = self.persistence
        health.errors += 1
        self.summary.persist_errors = health.errors
        health.last_error = f"{type(exc).__name__}: {exc}".strip()[:500]
        if refused_for_good(exc):
            self._write_refused(exc, refused)
            return
        self._backoff = min(max(self._backoff * 2, RETRY_FIRST), RETRY_MAX)
        self._retry_at = time.monotonic() + self._backoff
        if not health.ok:
            logger.warning("database write failed again", extra={"error": health.last_error})
            self._outage_check()
            return
        now = self._now or self.clock()
        health.failing_since = now
        self._failing_since = time.monotonic()
        logger.error(
            "cannot persist trading state: account reduces risk only until the database is back",
            extra={"account": self.config.account, "error": health.last_error},
        )
        account = self.config.account
        if self.oms is not None and self.oms.mode(account) is TradingMode.ACTIVE:
            self.oms.set_mode(account, TradingMode.REDUCING, now)
            self._reduced_for_persistence = True
        self._risk_notice(
            Severity.CRITICAL,
            "cannot persist trading state; only risk-reducing orders until the database is back",
            {"error": health.last_error},
        )

    def _write_refused(self, exc: BaseException, refused: dict | None) -> None:
        """The database refused data for good: halt the account at once and stop the engine.

        Retrying cannot store the batch (before, a refused fill was retried for 50 minutes while
        the engine traded on unstored). The account is halted (no new order, open ones
        cancelled) and a critical risk event with the halt is queued for storage in its own
        transaction; ``shutdown`` keeps everything unstored in a file and the run raises
        ``PersistenceRefused`` naming the record and the constraint.
        """
        detail = refused or db_error_detail(exc)
        if self._refused is not None:
            logger.critical("the database refused another write", extra={"refused": detail})
            return
        account = self.config.account
        now = self._now or self.clock()
        what = _refused_what(detail)
        why = detail["message"]
        constraint = detail.get("constraint_name")
        if constraint and constraint not in why:  # a trigger's refusal names it only there
            why = f"{why} (constraint {constraint})"
        self._refused = PersistenceRefused(f"the database refused {what}: {why}", detail)
        if self.persistence.failing_since is None:
            self.persistence.failing_since = now
        logger.critical(
            "the database refused %s; account %s halted, the engine stops: %s",
            what,
            account,
            why,
            extra={"account": account, "refused": detail},
        )
        if self.oms is not None and self.oms.mode(account) is not TradingMode.HALTED:
            self.oms.set_mode(account, TradingMode.HALTED, now)
        self._reduced_for_persistence = False  # never handed back by itself: an operator decides
        reason = f"database refused {what}: {why}"[:500]
        self._risk_notice(
            Severity.CRITICAL,
            f"engine stopped, account halted: {reason}"[:500],
            {"refused": detail},
        )
        self.control.queue_risk(
            [], [ModeChangeRequest(account, TradingMode.HALTED, reason, "persistence", now)]
        )
        self._stop_with(self._refused)

    def _outage_check(self) -> None:
        """Stop the engine once writes have failed for longer than the outage limit."""
        if self._failure is not None or self._stop is None or self._stop.is_set():
            return  # already stopping: the shutdown stores what it can within its own bound
        failing = time.monotonic() - self._failing_since
        if failing < self._outage_limit:
            return
        account = self.config.account
        now = self._now or self.clock()
        message = (
            f"database writes failed for {failing:.0f} s (limit {self._outage_limit:g} s, "
            f"RRR_WRITE_OUTAGE_LIMIT); engine stopped: {self.persistence.last_error}"
        )[:500]
        logger.critical("%s", message, extra={"account": account, **self.persistence.as_dict()})
        if self.oms is not None and self.oms.mode(account) is TradingMode.ACTIVE:
            self.oms.set_mode(account, TradingMode.REDUCING, now)
        self._reduced_for_persistence = False
        self._risk_notice(Severity.CRITICAL, message, {"error": self.persistence.last_error})
        self.control.queue_risk(
            [], [ModeChangeRequest(account, TradingMode.REDUCING, message, "persistence", now)]
        )
        self._stop_with(WriteOutage(message))

    def _stop_with(self, failure: BaseException) -> None:
        """Stop the run with ``failure`` (raised by ``run`` after the shutdown)."""
        self._failure = self._failure or failure
        if self._stop is not None:
            self._stop.set()

    def _persistence_ok(self) -> None:
        """Note a successful write; after an outage, hand the mode back to the database's."""
        if self._refused is not None:
            return  # a write after a refusal (a heartbeat) ends nothing: the engine stops
        self._backoff = 0.0
        self._retry_at = 0.0
        health = self.persistence
        if health.ok:
            return
        since, health.failing_since = health.failing_since, None
        health.recoveries += 1
        logger.warning(
            "trading state persisted again", extra={"account": self.config.account}
        )
        self._risk_notice(
            Severity.INFO,
            "trading state persisted again after a database outage",
            {"failing_since": since.isoformat() if since else None, "errors": health.errors},
        )
        if self._reduced_for_persistence:
            self._reduced_for_persistence = False
            self.control.resync_mode()  # the next control poll applies the stored mode

    def _risk_notice(self, severity: Severity, message: str, context: dict) -> None:
        """Queue a risk event for storage and broadcast it."""
        now = self._now or self.clock()
        record = RiskEventRecord(
            severity, "persistence", message, context, self.config.account, now
        )
        self.control.queue_risk([record], [])
        self._publish(
            "risk",
            "risk_event",
            {
                "account": self.config.account,
                "kind": record.limit_kind,
                "severity": severity.value,
                "message": message,
                "ts": now.isoformat(),
            },
        )

    def _apply_models(self, models: dict | None) -> None:
        """Swap in newly activated models (or drop deactivated ones) without a restart."""
        if not models:
            return
        for symbol, (model_id, predictor) in models.items():
            self._model_ids[symbol] = model_id if predictor is not None else None
            if predictor is None:
                self.session.predictors.pop(symbol, None)
            else:
                if self.metrics is not None:  # time and count its predictions
                    predictor = TimedPredictor(predictor, predictor.model_name or str(model_id))
                self.session.predictors[symbol] = predictor
            logger.info("model switched", extra={"symbol": symbol, "model_id": model_id})

    async def _persist_order(self, order: Order) -> None:
        """Store one order now (write-ahead before it is sent to an exchange).

        Raise ``WriteAheadFailed`` when the database refuses it: the order is then not sent.
        """
        clone = copy.copy(order)
        clone.metadata = dict(order.metadata)
        async with self._write_lock:
            try:
                await self._db(
                    self.store.write,
                    TradingBatch(account=self.config.account, orders=[clone], ts=self._now),
                )
            except DB_ERRORS as exc:
                refused = None
                if refused_for_good(exc):
                    refused = {"kind": "order", "record": as_json(clone), **db_error_detail(exc)}
                self._persistence_failed(exc, refused)
                raise WriteAheadFailed(str(exc)) from exc

    def _background_done(self, task: asyncio.Task, stop: asyncio.Event) -> None:
        """Stop the engine loudly when a background task failed."""
        if task.cancelled() or task.exception() is None:
            return
        logger.critical("background task failed; stopping", exc_info=task.exception())
        self._failure = self._failure or task.exception()
        stop.set()

    def _heartbeat_context(self, status: str) -> dict:
        if status == "running" and not self.persistence.ok:
            status = "degraded"
        return {
            "account": self.config.account,
            "status": status,
            **self.summary.as_dict(),
            "pipeline": self.pipeline.counts.as_dict(),
            "persistence": self.persistence.as_dict(),
        }

    def health(self) -> tuple[bool, str]:
        """Return (ok, detail) for the health endpoint of this process."""
        health = self.persistence
        if health.ok:
            return True, f"{self.config.account}: running"
        return False, (
            f"{self.config.account}: cannot persist since {health.failing_since:%H:%M:%S} "
            f"({health.unsaved_fills} fills unsaved, reducing only): {health.last_error}"
        )

    async def _heartbeat(self) -> None:
        context = self._heartbeat_context("running")
        await self._db(self.control.record_heartbeat, context)
        self._publish("system", "heartbeat", {**context, "ts": self.clock().isoformat()})
        if self.metrics is not None:
            ENGINE_HEARTBEAT.labels(self.config.account).set(time.time())

    # ----------------------------------------------------------------- control

    async def _control(self) -> None:
        """Apply admin/API changes: limits, trading state, new orders, cancel requests."""
        if self._refused is not None:
            return  # halted and stopping: no order, no mode handed back
        working = {o.client_order_id for o in self.oms.open_orders(self.config.account)}
        working |= self.runner.algos.active.keys()  # an algo parent can be cancelled too
        # Every order this engine has handled, so a finished order whose final state is not
        # flushed yet is never mistaken for a new API order.
        state: ControlState = await self._db(
            self.control.poll, False, working, working | self.recorder.seen
        )
        now = self._now or self.clock()
        if state.limits is not None:
            self.risk.replace_limits(state.limits)
            logger.info("risk limits reloaded", extra={"count": len(state.limits)})
        if state.sizer is not None:
            self.runner.sizer = state.sizer
            logger.info("sizing policy reloaded", extra={"account": self.config.account})
        account = self.config.account
        if self.bridge is not None and self.bridge.auth_failed.is_set():
            if self.oms.mode(account) is not TradingMode.HALTED:
                self.oms.set_mode(account, TradingMode.HALTED, now)
                self.control.queue_risk(
                    [],
                    [
                        ModeChangeRequest(
                            account,
                            TradingMode.HALTED,
                            "exchange rejected our credentials",
                            "venue_auth",
                            now,
                        )
                    ],
                )
            state.mode = None
        if state.mode is not None:
            mode = TradingMode(state.mode)
            if mode is TradingMode.ACTIVE and not self.persistence.ok:
                mode = TradingMode.REDUCING  # never open positions that cannot be stored
            if mode is not self.oms.mode(account):
                self.oms.set_mode(account, mode, now)
                self.risk.clear_pending(account)
        self._apply_models(state.models)
        await self._operator_orders(state, now)
        self._drain_risk()

    async def _operator_orders(self, state: ControlState, now: datetime) -> None:
        """Apply cancel requests and submit orders (or start algo parents) from the API/admin."""
        for cid in state.cancels:
            for child in self.runner.algos.cancel(cid):  # an algo parent: stop, cancel children
                self.oms.cancel(child, now, reason="parent cancelled by operator")
            if self.oms.get(cid) is not None:
                self.oms.cancel(cid, now, reason="cancel requested by operator")
        for order in state.new_orders:
            intent = _intent_from(order)
            if algo_metadata(intent.metadata) is not None:
                await self._algo_start(intent, now)
            else:
                self.oms.submit(intent, now)
        await self._algos_finish()

    async def _algo_start(self, intent: OrderIntent, now: datetime) -> None:
        """Start working a stored TWAP/VWAP parent (marked open first: never started twice)."""
        from trading.algo_persistence import algo_parent_finished, algo_parent_started
        from trading.engine.errors import AlgoConfigError

        try:
            algo = self.runner.algos.start(intent, now, record=False)  # its row exists
        except AlgoConfigError as exc:  # e.g. no price yet: refused loudly, nothing sent
            logger.warning("algo parent %s refused: %s", intent.client_order_id, exc)
            await self._db(algo_parent_finished, intent.client_order_id, Decimal(0), None, True)
            return
        await self._db(algo_parent_started, intent.client_order_id, now, algo.arrival_price)
        self.runner.submit_algo_children(now)

    async def _algos_restore(self, now: datetime) -> None:
        """Resume the parents this account was working before a restart."""
        from trading.algo_persistence import algo_parents_open

        for stored in await self._db(algo_parents_open, self.config.account):
            self.runner.algos.restore(
                _intent_from(stored.order), stored.started, stored.children, now, stored.arrival
            )

    def _algo_started(self, intent: OrderIntent, algo) -> None:
        """Record a parent a strategy started: stored open in the batch of its first children."""
        from trading.algo_persistence import algo_parent_order

        self.recorder.on_algo_parent(algo_parent_order(intent, algo, self._now or self.clock()))

    async def _algos_finish(self) -> None:
        """Store the outcome of parents that finished (filled, or short and cancelled).

        The batch that holds a strategy's parent and its children is stored first; whatever is
        not stored yet stays queued for the next poll.
        """
        from trading.algo_persistence import algo_parent_finished

        finished = self.runner.algos.drain_finished()
        if finished and not await self._persist():
            self.runner.algos.finished[:0] = finished
            return
        for i, algo in enumerate(finished):
            short = algo.filled < algo.quantity
            try:
                await self._db(
                    algo_parent_finished, algo.algo_id, algo.filled, algo.avg_price, short
                )
            except BaseException:
                self.runner.algos.finished[:0] = finished[i:]
                raise

    async def _signals(self) -> None:
        """Hand stored external signals (TradingView alerts) to the strategies, then mark them.

        At least once: a signal is marked delivered after the strategies saw it, and one seen
        in this process is never shown twice; the built-in ``tradingview_signal`` aims at a
        target position, so a signal shown again after a restart changes nothing.
        """
        if self.runner is None or not self.runner.takes_signals():
            return  # signals stay pending for an engine whose strategy acts on them
        pending = await self._db(
            signals_pending, self.config.account, self.config.symbols, self.clock()
        )
        delivered = []
        for signal in pending:
            if signal.signal_id not in self._signals_seen:
                self._signals_seen.add(signal.signal_id)
                self.runner.on_signal(replace(signal, ts=self._now or self.clock()))
            delivered.append(signal.signal_id)
        if delivered:
            self._drain_risk()
            await self._db(signals_mark_delivered, delivered, self.clock())

    # ----------------------------------------------------------------- broadcasts

    def _publish(self, channel: str, kind: str, data: dict | Callable[[], dict]) -> None:
        """Queue a stream message (stamped now) for the broadcaster; never wait for it.

        ``data`` may be a function that builds the payload: called only if the message is sent.
        """
        if self.layer is None:
            return
        if not self.broadcasts.put((channel, kind, data, time.time())):
            self.summary.broadcasts_dropped += 1

    def _publish_batch(self, batch: TradingBatch) -> None:
        """Publish a stored batch: portfolio (with positions), orders and fills."""
        account = batch.account
        for snap in batch.snapshots:
            self._publish("portfolio", "portfolio", portfolio_payload(snap, account))
        for order in batch.orders:
            self._publish("orders", "order", order_payload(order, account))
        for fill in batch.fills:
            self._publish("fills", "fill", fill_payload(fill, account))

    async def _broadcaster(self) -> None:
        # The layer's copy goes through the relay: this loop's hub has had the bundle by the
        # time ``broadcast`` returns, and Redis (and other processes' hubs) never hold back the
        # next bundle here. Waiting for the send and then pausing as long again (the old
        # pacing) let a soak's order notices reach the clients minutes late.
        relay = BundleRelay(self.layer)
        try:
            while True:
                items = await self.broadcasts.get_many(BROADCAST_BATCH)
                self.summary.broadcasts_conflated = self.broadcasts.conflated
                if items is None:
                    return
                await broadcast(self.layer, items, relay)
                await asyncio.sleep(BROADCAST_EVERY)  # messages meanwhile: the next bundle
        finally:
            await relay.close()


async def broadcast(layer, items: list[tuple], relay: BundleRelay | None = None) -> None:
    """Send ``(channel, kind, data, ts)`` messages in one layer message, each channel's in order.

    Channels come in the order of their first message (account channels first, as the
    ``BroadcastQueue`` hands them out). With ``relay``, returns once this loop's hub has them
    and leaves the layer send to the relay.
    """
    by_channel: dict[str, list] = {}
    for channel, kind, data, ts in items:
        by_channel.setdefault(channel, []).append((kind, data, ts))
    try:
        await apublish_bundle(layer, by_channel, relay)
    except Exception:  # a broken fan-out must never stop trading
        logger.exception("broadcast of %d messages failed", len(items))


class BroadcastQueue:
    """The runtime's stream messages waiting for the channel layer, most important first.

    Account messages (orders, fills, portfolio, risk, system) go out first and are dropped only
    past ``ACCOUNT_BACKLOG``. Market data a layer slower than the feed cannot keep up with is
    conflated: a quote, a book or a forming bar waiting to be sent is replaced by the newer one
    of its channel (the latest state is what a chart shows), and trades and closed bars wait in
    a bounded queue (dropped past ``MARKET_BACKLOG``, counted). Before, every message shared one
    10,000-slot queue: at the 50-symbol soak's pace market data filled it and nearly every
    message was dropped, order and fill notices included.
    """

    ACCOUNT_BACKLOG = 100_000
    MARKET_BACKLOG = 10_000
    CONFLATED = frozenset({"quote", "book"})

    def __init__(self) -> None:
        from collections import deque

        self._account: deque = deque()
        self._market: deque = deque()
        self._latest: dict[tuple[str, str], tuple] = {}  # (channel, kind) -> newest unsent
        self._ready = asyncio.Event()
        self._closed = False
        self._turn = False  # alternates market queue and conflated states
        self.conflated = 0  # states replaced by a newer one before they were sent

    def put(self, item: tuple) -> bool:
        """Queue ``(channel, kind, data, ts)``; return False when it had to be dropped."""
        channel, kind, data, _ = item
        if not channel.startswith("market.") or kind == "prediction":
            if len(self._account) >= self.ACCOUNT_BACKLOG:
                return False
            self._account.append(item)
        elif kind in self.CONFLATED or (kind == "bar" and not data.get("closed", True)):
            key = (channel, kind)
            self.conflated += key in self._latest
            self._latest[key] = item
        elif len(self._market) >= self.MARKET_BACKLOG:
            return False
        else:
            self._market.append(item)
        self._ready.set()
        return True

    def close(self) -> None:
        """Let ``get`` return None once everything queued has been handed out."""
        self._closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._account) + len(self._market) + len(self._latest)

    async def get(self) -> tuple | None:
        """Return the next message to send (None once closed and empty)."""
        items = await self.get_many(1)
        return None if items is None else items[0]

    async def get_many(self, limit: int) -> list[tuple] | None:
        """Return up to ``limit`` messages in sending order (None once closed and empty)."""
        while True:
            items = []
            while len(items) < limit and (item := self._next()) is not None:
                items.append(item)
            items = [sendable for item in items if (sendable := _sendable(item)) is not None]
            if items:
                return items
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def _next(self) -> tuple | None:
        if self._account:
            return self._account.popleft()
        self._turn = not self._turn
        if self._latest and (self._turn or not self._market):
            return self._latest.pop(next(iter(self._latest)))
        if self._market:
            return self._market.popleft()
        return None


def _sendable(item: tuple) -> tuple | None:
    """Return a queued message with its payload built and its stamp as ISO-8601 text.

    None (logged) if building the payload failed: one bad event must not stop the broadcasts.
    """
    channel, kind, data, ts = item
    if callable(data):
        try:
            data = data()
        except Exception:
            logger.exception("could not build the %s payload of %s", kind, channel)
            return None
    if ts.__class__ is float:
        ts = datetime.fromtimestamp(ts, UTC).isoformat()
    return channel, kind, data, ts


class PersistenceFailed(RuntimeError):
    """The engine stopped holding trading state the database would not take."""


class PersistenceRefused(PersistenceFailed):
    """The database refused a record for good (a constraint, a value it cannot hold).

    ``record``: its kind, the record (JSON data) and the database's error (``db_error_detail``).
    """

    def __init__(self, message: str, record: dict | None = None) -> None:
        super().__init__(message)
        self.record = record


class WriteOutage(PersistenceFailed):
    """Writes failed for longer than the outage limit (``RRR_WRITE_OUTAGE_LIMIT``)."""


def write_outage_limit(value: float | None) -> float:
    """Return the outage limit in seconds: ``value``, else ``RRR_WRITE_OUTAGE_LIMIT``, else 300."""
    if value is None:
        raw = os.environ.get("RRR_WRITE_OUTAGE_LIMIT", "").strip()
        try:
            value = float(raw) if raw else WRITE_OUTAGE_LIMIT
        except ValueError:
            raise ValueError(
                f"RRR_WRITE_OUTAGE_LIMIT must be a number of seconds, got {raw!r}"
            ) from None
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"the write outage limit must be a finite number of seconds above 0, got {value}"
        )
    return float(value)


def _refused_what(detail: dict) -> str:
    """Name the refused record: ``fill <trade id> of order <id> (buy 0.3 BTC-USD @ 100)``."""
    kind, record = detail.get("kind"), detail.get("record") or {}
    if kind == "fill":
        return (
            f"fill {record.get('venue_trade_id') or '?'} of order {record.get('order_id')} "
            f"({record.get('side')} {record.get('quantity')} {record.get('symbol')} "
            f"@ {record.get('price')})"
        )
    if kind == "order":
        return (
            f"order {record.get('client_order_id')} ({record.get('side')} "
            f"{record.get('quantity')} {record.get('symbol')}, {record.get('status')})"
        )
    if kind == "position":
        return f"position {record.get('symbol')} (quantity {record.get('quantity')})"
    if kind in ("cash", "snapshot"):
        return f"the account's {kind} ({record.get('cash')})"
    return "a write"


def _first_failure(tasks: list[asyncio.Task]) -> BaseException | None:
    """Return the error of the first finished task that failed (cancellation is no failure)."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            return task.exception()
    return None


def _quiet_event(episode) -> RiskEventRecord:
    """Return the one risk event that opens a quiet episode (``trading.engine.gate``)."""
    return RiskEventRecord(
        Severity.WARNING,
        "trading_state",
        f"account {episode.mode.value}: strategy orders are held back, not sent or stored",
        {"mode": episode.mode.value, "symbol": episode.symbol, "strategy": episode.strategy},
        episode.account,
        episode.ts,
    )


def simulated_history(market, symbols: list[str], timeframe: str, count: int) -> list[Bar]:
    """Return the simulated market's ``count`` bars per symbol that end where its feed starts."""
    seconds = TIMEFRAME_SECONDS[timeframe]
    end = datetime.fromtimestamp(market.now.timestamp() // seconds * seconds, UTC)
    frame = market.history_bars(symbols, timeframe, end - timedelta(seconds=seconds * count), end)
    return [
        Bar(
            symbol=row.symbol,
            timeframe=timeframe,
            ts=row.ts.to_pydatetime(),
            open=float(row.open),
            high=float(row.high),
            low=float(row.low),
            close=float(row.close),
            volume=float(row.volume),
            trade_count=int(row.trade_count),
        )
        for row in frame.itertuples(index=False)
    ]


def _intent_from(order: Order) -> OrderIntent:
    """Return the intent that re-submits an order recorded outside the loop.

    An API bracket carries its exits in the order's metadata (``stop_loss``, ``take_profit``).
    """
    metadata = dict(order.metadata)
    stop_loss, take_profit = metadata.pop("stop_loss", None), metadata.pop("take_profit", None)
    return OrderIntent(
        account=order.account,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        type=order.type,
        price=order.price,
        stop_price=order.stop_price,
        trail_amount=order.trail_amount,
        trail_percent=order.trail_percent,
        tif=order.tif,
        reduce_only=order.reduce_only,
        strategy=order.strategy or "api",
        client_order_id=order.client_order_id,
        stop_loss=Decimal(stop_loss) if stop_loss is not None else None,
        take_profit=Decimal(take_profit) if take_profit is not None else None,
        metadata=metadata,
    )


def signals_pending(account: str, symbols: list[str], now: datetime) -> list[Signal]:
    """Load the account's pending TradingView signals for ``symbols`` as engine signals."""
    from marketdata.tradingview import tradingview_signals_pending

    return [
        Signal(
            symbol=row.symbol.name,
            ts=row.received_at,
            action=row.action,
            price=row.close,
            position_size=row.position_size,
            signal_id=str(row.pk),
            comment=row.comment,
        )
        for row in tradingview_signals_pending(account=account, now=now)
        if row.symbol.name in symbols
    ]


def signals_mark_delivered(ids: list[str], now: datetime) -> int:
    """Mark the signals with these ids delivered."""
    from marketdata.tradingview import tradingview_signals_mark_delivered

    return tradingview_signals_mark_delivered(ids=[int(i) for i in ids], now=now)


def _with_db(fn: Callable) -> Callable:
    """Wrap ``fn`` so stale connections are replaced before it runs on the DB thread."""

    def call(*args):
        close_old_connections()
        try:
            return fn(*args)
        except DB_ERRORS:
            # A cut or broken connection is not reused: the next attempt opens a fresh one.
            try:
                connections.close_all()
            except DB_ERRORS:
                pass
            raise

    return call
