"""The real-time trading runtime hosted by ``manage.py runtrader``.

One asyncio loop runs the whole path::

    feed → MarketDataPipeline (validate, aggregate) → StrategyRunner (strategies → intents)
         → RiskChecker (pre-trade hook) → OrderManager → PaperVenue → fills → Portfolio

Slow work never blocks matching: market data goes to the ``AsyncBatchWriter``; orders, fills,
positions, cash and snapshots are cut into ``TradingBatch``es on the loop and written by one
database thread in one transaction each; broadcasts go through a bounded queue and are sent only
after the batch that contains them committed. A control poll (every second) reloads risk limits
edited in the admin, applies trading-state changes, picks up orders submitted through the API and
honours cancel requests. State survives SIGKILL: a restart reloads cash, positions and open
orders, and continues.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import close_old_connections, connections

from marketdata.pipeline import MarketDataPipeline
from marketdata.services import quality_event_record_rejected
from marketdata.storage import AsyncBatchWriter
from risk.engine.checks import RiskChecker
from risk.engine.enforcer import StopEnforcer
from risk.engine.events import ModeChangeRequest
from trading.engine.hooks import TradingMode
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Order, OrderIntent
from trading.engine.portfolio import PositionSnapshot
from trading.engine.runner import StrategyRunner
from trading.engine.session import TradingSession
from trading.engine.strategies import create_strategy
from trading.engine.venue import PaperVenue, VenueConfig
from trading.live_bridge import LiveVenueBridge
from trading.persistence import TradingBatch, TradingStore
from trading.runtime_control import ControlState, RuntimeControl

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RuntimeConfig:
    """What ``runtrader`` was asked to run."""

    account: str
    symbols: list[str]
    feed: str = "sim"
    strategy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
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
    restored_orders: int = 0
    market_data: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as a dict."""
        return {name: getattr(self, name) for name in self.__slots__}


class Recorder:
    """OMS listener: remembers what changed until the next batch is cut."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.symbols: set[str] = set()
        self.new_orders = 0
        self.rejected = 0
        self.seen: set[str] = set()

    def on_order(self, order: Order) -> None:
        """Mark ``order`` dirty."""
        self.orders[order.client_order_id] = order
        self.symbols.add(order.symbol)
        if order.client_order_id not in self.seen:
            self.seen.add(order.client_order_id)
            self.new_orders += 1
            self.rejected += order.status.value == "rejected"

    def on_fill(self, fill: Fill) -> None:
        """Queue ``fill``."""
        self.fills.append(fill)
        self.symbols.add(fill.symbol)

    def cut(self, oms: OrderManager, account: str, now: datetime) -> TradingBatch:
        """Return a batch of copies of everything changed, with positions and cash after it."""
        portfolio = oms.portfolio(account)
        positions = []
        for symbol in self.symbols:
            pos = portfolio.position(symbol)
            if pos is None:
                positions.append(PositionSnapshot(symbol, Decimal(0), Decimal(0)))
            else:
                positions.append(
                    PositionSnapshot(
                        symbol,
                        pos.quantity,
                        pos.avg_price,
                        pos.mark_price,
                        pos.realized_pnl,
                        pos.fees,
                    )
                )
        orders = []
        for order in self.orders.values():
            clone = copy.copy(order)
            clone.metadata = dict(order.metadata)
            orders.append(clone)
        batch = TradingBatch(
            account=account,
            orders=orders,
            fills=self.fills,
            positions=positions,
            cash=portfolio.cash,
            ts=now,
        )
        self.orders, self.fills, self.symbols = {}, [], set()
        return batch


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
        self.pipeline = MarketDataPipeline(source=config.feed)
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trading-db")
        self.md_writer: AsyncBatchWriter | None = None
        self.broadcasts: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        self.risk: RiskChecker | None = None
        self.oms: OrderManager | None = None
        self.runner: StrategyRunner | None = None
        self.bridge: LiveVenueBridge | None = None
        self.session: TradingSession | None = None
        self._now: datetime | None = None
        self._live_tasks: list[asyncio.Task] = []
        self._live_stop = asyncio.Event()

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
        self.summary.restored_orders = len(state.open_orders)
        self.oms.set_mode(self.config.account, TradingMode(control.mode), now)
        self.runner = StrategyRunner(self.oms, bars_to_venue=False)
        if self.config.strategy:
            strategy = create_strategy(self.config.strategy, **self.config.params)
            self.runner.add(strategy, self.config.account, symbols=self.config.symbols)
        self.runner.start(now)
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

    def _load(self):
        state = self.store.load()
        control = self.control.poll(force=True)
        self.control.record_session("session_start", self._session_context(state))
        return state, control

    def _session_context(self, state) -> dict:
        """What a replay needs to reproduce this session: configuration and starting state."""
        c = self.config
        return {
            "account": c.account,
            "symbols": c.symbols,
            "feed": c.feed,
            "strategy": c.strategy,
            "params": c.params,
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
        """Run until ``stop`` is set, the duration elapses or the feed ends; then shut down."""
        await self.setup()
        if self.config.store_market_data:
            source = self.config.feed
            self.md_writer = AsyncBatchWriter(
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
            asyncio.create_task(self._broadcaster(), name="broadcast"),
        ]
        live_tasks = []
        if self.bridge is not None:
            live_stop = self._live_stop = asyncio.Event()
            live_tasks = [
                asyncio.create_task(self.bridge.run(live_stop)),
                asyncio.create_task(self.bridge.reconcile_forever(live_stop)),
            ]
        self._live_tasks = live_tasks
        await self._heartbeat()
        waiters = [tasks[0], asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self.config.duration, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.set()
            await self.shutdown(tasks)
        feed_task = tasks[0]
        if feed_task.done() and not feed_task.cancelled() and feed_task.exception():
            raise feed_task.exception()
        return self.summary

    async def shutdown(self, tasks: list[asyncio.Task]) -> None:
        """Stop intake, persist everything, write a final snapshot."""
        await self.feed.close()
        if self._live_tasks:  # let queued exchange calls finish, then stop polling
            self._live_stop.set()
            await asyncio.wait(self._live_tasks, timeout=15)
            for task in self._live_tasks:
                task.cancel()
        for task in tasks[:-1]:
            task.cancel()
        await asyncio.gather(*tasks[:-1], return_exceptions=True)
        for out in self.pipeline.flush():
            await self._emit(out)
        now = self._now or self.clock()
        self.runner.stop(now)
        await self._flush()
        await self._snapshot()
        if self.md_writer is not None:
            stats = await self.md_writer.close()
            self.summary.market_data = {"stored": stats.written, "rejected": stats.rejected}
        await self.broadcasts.put(None)
        await asyncio.gather(tasks[-1], return_exceptions=True)
        await self._db(self.control.record_heartbeat, self._heartbeat_context("stopped"))
        await self._db(
            self.control.record_session,
            "session_end",
            {**self._heartbeat_context("stopped"), "ended_at": self._now},
        )
        await asyncio.get_running_loop().run_in_executor(self.db, connections.close_all)
        self.db.shutdown(wait=True)

    async def _every(self, interval: float, fn, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                await fn()

    # ----------------------------------------------------------------- market data

    async def _consume(self, stop: asyncio.Event) -> None:
        async for event in self.feed.events():
            self.summary.events += 1
            received = getattr(self.feed, "last_received_at", None)
            for out in self.pipeline.process(event):
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
            self._publish(
                f"market.{bar.symbol}",
                "bar",
                {
                    "symbol": bar.symbol,
                    "timeframe": bar.timeframe,
                    "ts": bar.ts.isoformat(),
                    "open": bar.open,
                    "high": bar.high,
                    "low": bar.low,
                    "close": bar.close,
                    "volume": bar.volume,
                },
            )

    # ----------------------------------------------------------------- risk

    def _drain_risk(self) -> None:
        """Apply mode changes the risk engine asked for; queue its events for storage."""
        if self.session is None:
            return
        events, changes = self.session.drain_risk()
        if not changes and not events:
            return
        for change in changes:
            self._publish(
                "risk",
                "trading_state",
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
                },
            )
        self.control.queue_risk(events, changes)

    # ----------------------------------------------------------------- persistence

    async def _flush(self) -> None:
        """Cut a batch on the loop and write it on the database thread."""
        self._drain_risk()
        batch = self.recorder.cut(self.oms, self.config.account, self._now or self.clock())
        self.summary.orders = self.recorder.new_orders
        self.summary.rejected = self.recorder.rejected
        if batch:
            await self._db(self.store.write, batch)
            self.summary.batches += 1
            self.summary.fills += len(batch.fills)
            self._publish_batch(batch)
        await self._db(self.control.flush_risk)
        if self.session.predictions:
            predictions, self.session.predictions = self.session.predictions, []
            await self._db(self.control.store_predictions, predictions, dict(self._model_ids))
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

    async def _snapshot(self) -> None:
        now = self._now or self.clock()
        portfolio = self.oms.portfolio(self.config.account)
        portfolio.roll_day(now)
        batch = TradingBatch(
            account=self.config.account,
            snapshot=portfolio.snapshot(now),
            cash=portfolio.cash,
            ts=now,
        )
        await self._db(self.store.write, batch)
        snap = batch.snapshot
        self._publish(
            "portfolio",
            "snapshot",
            {
                "account": self.config.account,
                "ts": now.isoformat(),
                "cash": str(snap.cash),
                "equity": str(snap.equity),
                "daily_pnl": str(snap.daily_pnl),
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
                self.session.predictors[symbol] = predictor
            logger.info("model switched", extra={"symbol": symbol, "model_id": model_id})

    async def _persist_order(self, order: Order) -> None:
        """Store one order now (write-ahead before it is sent to an exchange)."""
        clone = copy.copy(order)
        clone.metadata = dict(order.metadata)
        await self._db(
            self.store.write,
            TradingBatch(account=self.config.account, orders=[clone], ts=self._now),
        )

    def _heartbeat_context(self, status: str) -> dict:
        return {
            "account": self.config.account,
            "status": status,
            **self.summary.as_dict(),
            "pipeline": self.pipeline.counts.as_dict(),
        }

    async def _heartbeat(self) -> None:
        await self._db(self.control.record_heartbeat, self._heartbeat_context("running"))

    # ----------------------------------------------------------------- control

    async def _control(self) -> None:
        """Apply admin/API changes: limits, trading state, new orders, cancel requests."""
        working = {o.client_order_id for o in self.oms.open_orders(self.config.account)}
        # Every order this engine has handled, so a finished order whose final state is not
        # flushed yet is never mistaken for a new API order.
        state: ControlState = await self._db(
            self.control.poll, False, working, working | self.recorder.seen
        )
        now = self._now or self.clock()
        if state.limits is not None:
            self.risk.replace_limits(state.limits)
            logger.info("risk limits reloaded", extra={"count": len(state.limits)})
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
        if state.mode is not None and TradingMode(state.mode) is not self.oms.mode(account):
            self.oms.set_mode(account, TradingMode(state.mode), now)
            self.risk.clear_pending(account)
        self._apply_models(state.models)
        for cid in state.cancels:
            if self.oms.get(cid) is not None:
                self.oms.cancel(cid, now, reason="cancel requested by operator")
        for order in state.new_orders:
            self.oms.submit(_intent_from(order), now)
        self._drain_risk()

    # ----------------------------------------------------------------- broadcasts

    def _publish(self, group: str, kind: str, data: dict) -> None:
        if self.layer is None:
            return
        try:
            self.broadcasts.put_nowait((group, kind, data))
        except asyncio.QueueFull:
            self.summary.broadcasts_dropped += 1

    def _publish_batch(self, batch: TradingBatch) -> None:
        for order in batch.orders:
            self._publish(
                "orders",
                "order",
                {
                    "client_order_id": order.client_order_id,
                    "account": batch.account,
                    "symbol": order.symbol,
                    "side": order.side.value,
                    "type": order.type.value,
                    "quantity": str(order.quantity),
                    "status": order.status.value,
                    "filled_quantity": str(order.filled_quantity),
                    "reason": order.reject_reason,
                },
            )
        for fill in batch.fills:
            self._publish(
                "orders",
                "fill",
                {
                    "client_order_id": fill.order_id,
                    "symbol": fill.symbol,
                    "side": fill.side.value,
                    "quantity": str(fill.quantity),
                    "price": str(fill.price),
                    "fee": str(fill.fee),
                    "ts": fill.ts.isoformat(),
                },
            )

    async def _broadcaster(self) -> None:
        while True:
            item = await self.broadcasts.get()
            if item is None:
                return
            group, kind, data = item
            try:
                await self.layer.group_send(
                    group, {"type": "group.message", "kind": kind, "data": data}
                )
            except Exception:  # a broken fan-out must never stop trading
                logger.exception("broadcast to %s failed", group)


def _intent_from(order: Order) -> OrderIntent:
    """Return the intent that re-submits an order recorded outside the loop."""
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
        metadata=dict(order.metadata),
    )


def _with_db(fn: Callable) -> Callable:
    """Wrap ``fn`` so stale connections are replaced before it runs on the DB thread."""

    def call(*args):
        close_old_connections()
        return fn(*args)

    return call
