"""Prometheus metrics RRR exports: feed, engine, portfolio, ML, jobs and alerts.

Every series lives in prometheus-client's default registry, which ``/metrics``
(django-prometheus) and ``runtrader --metrics-port`` serve. With ``PROMETHEUS_MULTIPROC_DIR`` set
(several processes behind one server), prometheus-client writes the values to files in that
directory and the exporter merges them; gauges say how (``multiprocess_mode``).

The hot path (the ``EngineMetrics`` OMS listener, ``FeedMetrics``, ``TimedPredictor``) adds to
plain ints and bucket counts, pushed into the series at each scrape, the engine's flush and exit
(``monitoring.metrics_batch``). Anything that needs the database (queue depth, live accuracy,
VaR) is computed on a schedule or at scrape time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from time import monotonic

from prometheus_client import Counter, Gauge, Histogram

# Imported before any series is made: its collector must come first in the registry.
from monitoring.metrics_batch import (
    PUBLISH_ON_COLLECT,
    CounterBatch,
    HistogramBatch,
    TallyBatch,
    TotalBatch,
    batches_register,
    metrics_publish,
)

# Gauges that many processes may set: the most recent value wins (a restarted engine's figure).
_RECENT = "mostrecent"
# Feed series by symbol: a feed's symbols beyond its subscription (without one, beyond the first
# MAX_SYMBOL_SERIES seen, as the pipeline admits) are counted under one label, so a source of
# random symbols cannot grow the series without bound.
OTHER_SYMBOL = "_other"
MAX_SYMBOL_SERIES = 1_000

# --- feed ----------------------------------------------------------------------------------
FEED_RECEIVED = Counter(
    "rrr_feed_messages_received", "Market-data events received", ["source", "symbol"]
)
FEED_FLAGGED = Counter(
    "rrr_feed_messages_flagged", "Events the quality validator flagged", ["source", "symbol"]
)
FEED_QUARANTINED = Counter(
    "rrr_feed_messages_quarantined", "Events quarantined (not stored as data)", ["source", "symbol"]
)
FEED_STORED = Counter(
    "rrr_feed_rows_stored",
    "Market-data rows written (inserted, or a stored bar amended); a replayed duplicate is not",
    ["source", "symbol"],
)
FEED_RECONNECTS = Counter("rrr_feed_reconnects", "Feed reconnects after a drop", ["source"])
FEED_LAG = Gauge(
    "rrr_feed_lag_seconds",
    "Receive time minus the newest event's exchange timestamp",
    ["source"],
    multiprocess_mode=_RECENT,
)
FEED_LAST_MESSAGE = Gauge(
    "rrr_feed_last_message_timestamp_seconds",
    "Unix time of the newest message received",
    ["source"],
    multiprocess_mode="max",
)

# --- engine --------------------------------------------------------------------------------
ENGINE_EVENTS = Counter("rrr_engine_events", "Events processed by the engine", ["account"])
TICK_TO_ORDER = Histogram(
    "rrr_engine_tick_to_order_seconds",
    "From receiving the market event to the order it caused leaving the OMS",
    ["account"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ORDERS = Counter(
    "rrr_orders", "Order state changes by status and type", ["account", "status", "type"]
)
FILLS = Counter("rrr_fills", "Fills", ["account", "symbol", "side"])
SLIPPAGE_BPS = Histogram(
    "rrr_fill_slippage_bps",
    "Fill price against the reference price when the order was decided, bps (+ = worse)",
    ["account"],
    buckets=(-50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100, 200),
)
REJECTS = Counter("rrr_order_rejects", "Orders rejected, by the risk rule", ["account", "rule"])
ENGINE_HEARTBEAT = Gauge(
    "rrr_engine_heartbeat_timestamp_seconds",
    "Unix time of the engine's last heartbeat",
    ["account"],
    multiprocess_mode="max",
)

# --- portfolio -----------------------------------------------------------------------------
_PORTFOLIO_DOCS = {
    "equity": "Equity (cash + marked positions)",
    "cash": "Cash",
    "daily_pnl": "Equity minus the UTC day's starting equity",
    "realized_pnl": "Realised P&L since the account started",
    "unrealized_pnl": "Unrealised P&L of open positions at their marks",
    "fees": "Fees paid since the account started",
    "gross_exposure": "Sum of |position value| (account currency)",
    "net_exposure": "Sum of signed position value (account currency)",
    "drawdown": "Current drawdown from the equity peak (fraction of the peak)",
    "var_95": "One-bar 95 % historical VaR of the current positions (account currency)",
    "cvar_95": "One-bar 95 % CVaR of the current positions (account currency)",
}
PORTFOLIO = {
    name: Gauge(f"rrr_portfolio_{name}", doc, ["account"], multiprocess_mode=_RECENT)
    for name, doc in _PORTFOLIO_DOCS.items()
}
TRADING_STATE = Gauge(
    "rrr_trading_state",
    "1 for the account's current trading state (active, reducing, halted), else 0",
    ["account", "state"],
    multiprocess_mode=_RECENT,
)
TRADING_STATES = ("active", "reducing", "halted")

# --- ML ------------------------------------------------------------------------------------
ML_INFERENCE = Histogram(
    "rrr_ml_inference_seconds",
    "Time to run a model on one bar",
    ["model"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ML_PREDICTIONS = Counter("rrr_ml_predictions", "Predictions made", ["model", "symbol"])
ML_ACCURACY = Gauge(
    "rrr_ml_live_accuracy",
    "Share of resolved live predictions whose direction was right",
    ["model"],
    multiprocess_mode=_RECENT,
)
ML_BASELINE = Gauge(
    "rrr_ml_live_baseline_accuracy",
    "Share of the same resolved bars that went up (the always-long baseline)",
    ["model"],
    multiprocess_mode=_RECENT,
)
ML_RESOLVED = Gauge(
    "rrr_ml_resolved_predictions",
    "Predictions resolved against later bars",
    ["model"],
    multiprocess_mode=_RECENT,
)

# --- jobs ----------------------------------------------------------------------------------
JOB_QUEUE_DEPTH = Gauge(
    "rrr_jobs_queue_depth", "Tasks waiting in the django-q2 queue", multiprocess_mode=_RECENT
)
JOB_DURATION = Histogram(
    "rrr_job_duration_seconds",
    "django-q2 task run time",
    ["func"],
    buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
JOB_FAILURES = Counter("rrr_job_failures", "django-q2 tasks that failed", ["func"])

# --- alerts --------------------------------------------------------------------------------
ALERTS_RAISED = Counter("rrr_alerts_raised", "Alert events raised", ["kind", "severity"])
ALERTS_DEDUPLICATED = Counter(
    "rrr_alerts_deduplicated", "Alert events counted into an open alert, not resent", ["kind"]
)
ALERT_DELIVERIES = Counter(
    "rrr_alert_deliveries", "Alert deliveries by channel and outcome", ["channel", "outcome"]
)

# --- alternative data (TradingView alerts, sentiment, on-chain) ----------------------------
ALT_DATA_EVENTS = Counter(
    "rrr_altdata_events",
    "Alternative-data events by source and outcome (tradingview: stored, duplicate, refused, "
    "rate_limited, not_found; sentiment: stored, quarantined; onchain: stored intervals)",
    ["source", "outcome"],
)

KNOWN_RULES = frozenset(
    {
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
        "order_validation",
        "trading_state",
    }
)
FINAL_STATUSES = frozenset({"filled", "cancelled", "rejected", "expired"})


def portfolio_set(account: str, figures: dict[str, Decimal | float | None]) -> None:
    """Set the portfolio gauges of ``account`` from ``figures`` (unknown names are ignored)."""
    for name, value in figures.items():
        gauge = PORTFOLIO.get(name)
        if gauge is not None and value is not None:
            gauge.labels(account).set(float(value))


def portfolio_snapshot_set(snapshot) -> None:
    """Set the portfolio gauges from an engine ``PortfolioSnapshot``."""
    peak = float(snapshot.peak_equity)
    drawdown = max(peak - float(snapshot.equity), 0.0) / peak if peak > 0 else 0.0
    portfolio_set(
        snapshot.account,
        {
            "equity": snapshot.equity,
            "cash": snapshot.cash,
            "daily_pnl": snapshot.daily_pnl,
            "realized_pnl": snapshot.realized_pnl,
            "unrealized_pnl": snapshot.unrealized_pnl,
            "fees": snapshot.fees,
            "gross_exposure": snapshot.gross_exposure,
            "net_exposure": snapshot.net_exposure,
            "drawdown": drawdown,
        },
    )


def trading_state_set(account: str, state: str) -> None:
    """Mark ``state`` as the account's trading state (1) and the others 0."""
    for candidate in TRADING_STATES:
        TRADING_STATE.labels(account, candidate).set(1.0 if candidate == state else 0.0)


def reject_rule(reason: str) -> str:
    """Return the risk rule a rejection reason names (``max_position_pct[symbol=..]: ..``)."""
    head = reason.split(":", 1)[0].split("[", 1)[0].strip()
    if head in KNOWN_RULES:
        return head
    return "buying_power" if "buying power" in reason else "other"


_UNSEEN = object()  # an order the listener has not seen yet


class EngineMetrics:
    """OMS listener counting orders, fills, slippage and rejects; times tick-to-order.

    Nothing is done per market event but a store: the runtime sets ``tick_received`` to
    ``time.monotonic()`` of the event it is processing, and a new order seen meanwhile is timed
    from it. Events are counted by the engine itself (``events``: a callable returning its
    running total, read at publish); without one, ``on_event`` counts them here.

    Everything is batched (``monitoring.metrics_batch``): an order change adds to a dict, a new
    order queues its latency, a fill is queued raw with the decision price of its order (the
    reference price the OMS checked it at, ``Order.reference_price``; for an order it did not
    check, ``reference_price(symbol)`` when first seen); a scrape, the runtime's flush or
    ``publish`` counts, converts and pushes them into the series.
    """

    def __init__(
        self,
        account: str,
        reference_price: Callable[[str], Decimal | None] | None = None,
        events: Callable[[], int] | None = None,
    ) -> None:
        self.account = account
        self.reference_price = reference_price  # callable(symbol) -> Decimal | None
        self.tick_received: float | None = None
        self._decision: dict[str, Decimal | None] = {}  # open orders seen -> decision price
        self._unpriced: list = []  # fills of orders not seen yet (filled as they were sent)
        if events is None:
            self._events = CounterBatch(ENGINE_EVENTS, account)
            self._event_counts = self._events.counts
            self._event_counts[None] = 0
        else:
            self._events = TotalBatch(ENGINE_EVENTS, account, read=events)
        self._orders = CounterBatch(ORDERS, account)  # (status, type)
        self._order_counts = self._orders.counts
        self._rejects = CounterBatch(REJECTS, account)  # rule
        self._latency = HistogramBatch(TICK_TO_ORDER, account, values=_latencies)
        self._latency_pending = self._latency.pending
        self._fills = _FillBatch(account)
        self._fills_pending = self._fills.pending
        batches = (self._events, self._orders, self._rejects, self._latency, self._fills)
        batches_register(self, batches)

    def on_event(self, received: float | None) -> None:
        """Count one engine event and remember when it arrived (without ``events``)."""
        self._event_counts[None] += 1
        self.tick_received = received

    def on_order(self, order) -> None:
        """Count an order state change; time an order and note its decision price the first
        time it is seen, then price its fills that came first."""
        status = order.status  # a StrEnum: its own label value
        counts = self._order_counts
        key = (status, order.type)
        try:
            counts[key] += 1
        except KeyError:
            counts[key] = 1
        cid = order.client_order_id
        decision = self._decision
        if cid in decision:
            if status in FINAL_STATUSES:
                del decision[cid]
                if status == "rejected":  # a venue's late refusal
                    self._rejects.add(reject_rule(order.reject_reason))
            return
        received = self.tick_received  # first seen: the order just left the OMS
        if received is not None:
            self._latency_pending.append(monotonic() - received)
        if status in FINAL_STATUSES:
            if status == "rejected":
                self._rejects.add(reject_rule(order.reject_reason))
            elif self._unpriced:  # filled as it was sent
                self._price(cid, order.reference_price or self._reference(order.symbol))
            return
        decided = decision[cid] = order.reference_price or self._reference(order.symbol)
        if self._unpriced:
            self._price(cid, decided)

    def on_fill(self, fill) -> None:
        """Queue a fill with the decision price of its order.

        The OMS reports fills before order changes, so the fill of an order that fills as it
        is sent waits for the order (``on_order``, in the same call) and its reference price.
        """
        decided = self._decision.get(fill.order_id, _UNSEEN)
        if decided is _UNSEEN:
            self._unpriced.append(fill)
        else:  # four untracked objects: nothing the garbage collector counts stays (_FillBatch)
            self._fills_pending.extend((fill.symbol, fill.side, fill.price, decided))

    def _reference(self, symbol: str) -> Decimal | None:
        return None if self.reference_price is None else self.reference_price(symbol)

    def _price(self, cid: str, decided: Decimal | None) -> None:
        """Queue the waiting fills of order ``cid`` at its decision price."""
        unpriced, pending = self._unpriced, self._fills_pending
        if len(unpriced) == 1 and unpriced[0].order_id == cid:  # an order filled as it was sent
            fill = unpriced.pop()
            pending.extend((fill.symbol, fill.side, fill.price, decided))
            return
        waiting = []
        for fill in unpriced:
            if fill.order_id == cid:
                pending.extend((fill.symbol, fill.side, fill.price, decided))
            else:
                waiting.append(fill)  # another order of the same OMS call, seen next
        unpriced[:] = waiting

    def publish(self) -> None:
        """Push this process's batched series (the engine's, feeds', models') into the client."""
        metrics_publish()


def _latencies(seconds: list[float]) -> list[float]:
    """Tick-to-order seconds as observed (a NaN receive time: nothing observed)."""
    return [max(s, 0.0) for s in seconds if s == s]


class _FillBatch:
    """Fills queued raw with their decision prices: counted by symbol and side, and their
    slippage observed, at publish.

    A fill is queued as four flat items (symbol, side, price, decision price or None): strings,
    an enum member and ``Decimal``s, none tracked by the garbage collector. A queued tuple, or
    the fill itself, would be two tracked objects kept per fill until the publish: enough to
    set off young collections (one per ~700 kept) in the ticks that place orders, which
    showed in the tick-to-order tail. One ``deque.extend`` of a tuple runs no Python code, so
    a publish on another thread sees whole fills only.
    """

    __slots__ = ("pending", "_fills", "_slippage")

    def __init__(self, account: str) -> None:
        self.pending: deque = deque()  # symbol, side, price, decision price or None; ...
        self._fills = CounterBatch(FILLS, account)  # (symbol, side): written by publishes only
        self._slippage = HistogramBatch(SLIPPAGE_BPS, account)

    def publish(self) -> None:
        """Count and price the fills queued since the last publish."""
        pending = self.pending
        if not pending:
            return
        popleft = pending.popleft
        items = iter([popleft() for _ in range(len(pending))])  # only a publish pops
        counts = self._fills.counts
        slippage = []
        for symbol, side, price, decided in zip(items, items, items, items, strict=False):
            key = (symbol, side)
            counts[key] = counts.get(key, 0) + 1
            if decided:
                slippage.append(_slippage_bps(side, price, decided))
        self._fills.publish()
        self._slippage.add(slippage)


def _slippage_bps(side: str, price: Decimal, decided: Decimal) -> float:
    """Fill price against the decision price in bps, + when worse for the order's side."""
    reference = float(decided)
    sign = 1.0 if side == "buy" else -1.0
    return sign * (float(price) - reference) / reference * 1e4


# Output types that can carry no verdict (no instance dict, no such attribute): skipped fast.
_NO_VERDICT: set[type] = set()


def _verdict(outputs: Iterable[object]) -> str:
    """Return "quarantine", "flag" or "" for a pipeline's outputs (quarantine over flag)."""
    verdict = ""
    for out in outputs:
        kind = type(out)
        if kind in _NO_VERDICT:
            continue
        seen = getattr(out, "verdict", "")
        if seen == "quarantine" or (seen == "flag" and not verdict):
            verdict = seen
        elif (
            not kind.__dictoffset__
            and not hasattr(kind, "verdict")
            and (
                kind.__getattribute__ is object.__getattribute__
                and not hasattr(kind, "__getattr__")
            )
        ):
            _NO_VERDICT.add(kind)
    return verdict


class FeedMetrics:
    """Per-source feed counters, batched per symbol (``monitoring.metrics_batch``).

    ``runtrader`` counts each event inline, with no Python call (``TradingRuntime._consume``):
    ``received_symbols.append(symbol)``, ``last_event = event`` (its time gives the lag at the
    next sync), and ``findings(symbol, outputs)`` only when the pipeline's outputs start with a
    ``QualityRecord`` (it puts an event's findings first). ``received`` does the same in one
    call; ``received_batch`` counts a batch (``ingest``).
    """

    def __init__(self, source: str, symbols: Iterable[str] | None = None) -> None:
        self.source = source
        # The symbols with series of their own: the subscription, else the first seen (bounded).
        self._symbols = None if symbols is None else frozenset(symbols)
        self._labelled: set[str] = set()
        self._received = TallyBatch(FEED_RECEIVED, source, label=self._symbol_label)
        self.received_symbols = self._received.pending
        self._flagged = CounterBatch(FEED_FLAGGED, source)
        self._quarantined = CounterBatch(FEED_QUARANTINED, source)
        batches_register(self, (self._received, self._flagged, self._quarantined))
        self.last_event: object = None  # the newest event's time is read from it at a sync
        self._newest: datetime | None = None
        self._stored: dict[str, int] = {}  # symbol -> rows stored, as last published
        self._stored_children: dict[str, object] = {}
        self._reconnects = 0
        self._synced = 0  # events counted at the last sync

    def received(self, symbol: str, ts: datetime | None, outputs: Iterable[object]) -> None:
        """Count one event of ``symbol`` and whether the validator flagged or quarantined it."""
        self.received_symbols.append(symbol)
        if ts is not None and (self._newest is None or ts > self._newest):
            self._newest = ts
        for out in outputs:
            if type(out) not in _NO_VERDICT:  # else a trade or bar: the common case, no verdict
                self.findings(symbol, outputs)
                return

    def findings(self, symbol: str, outputs: Iterable[object]) -> None:
        """Count an event of ``symbol`` as quarantined or flagged by its outputs' verdicts."""
        verdict = _verdict(outputs)
        if verdict == "quarantine":
            self._quarantined.add(self._symbol_label(symbol))
        elif verdict == "flag":
            self._flagged.add(self._symbol_label(symbol))

    def _symbol_label(self, symbol: object) -> str:
        """Return the label ``symbol`` is counted under: itself (the same object) when
        subscribed (without a subscription: among the first ``MAX_SYMBOL_SERIES`` seen), else
        ``OTHER_SYMBOL``; "" for none (a malformed frame), so a feed of random symbols makes
        at most one more series."""
        if not isinstance(symbol, str) or not symbol:
            return ""
        if self._symbols is not None:
            return symbol if symbol in self._symbols else OTHER_SYMBOL
        if symbol in self._labelled:
            return symbol
        if len(self._labelled) < MAX_SYMBOL_SERIES:
            self._labelled.add(symbol)
            return symbol
        return OTHER_SYMBOL

    def received_batch(self, events, outputs: Iterable[object]) -> None:
        """Count a batch (``ingest``): events per symbol, and the events the validator flagged
        or quarantined, told apart by (symbol, event time) with quarantine over flag."""
        append = self.received_symbols.append
        for event in events:
            append(getattr(event, "symbol", ""))
            ts = getattr(event, "ts", None)
            if ts is not None and (self._newest is None or ts > self._newest):
                self._newest = ts
        verdicts: dict[tuple, str] = {}
        for out in outputs:
            seen = getattr(out, "verdict", "")
            if seen in ("flag", "quarantine"):
                key = (getattr(out, "symbol", "") or "", getattr(out, "event_ts", None))
                if verdicts.get(key) != "quarantine":
                    verdicts[key] = seen
        for (symbol, _), verdict in verdicts.items():
            batch = self._quarantined if verdict == "quarantine" else self._flagged
            batch.add(self._symbol_label(symbol))

    def sync(
        self, *, stored: Mapping[str, int] | None = None, reconnects: int | None = None
    ) -> None:
        """Publish the batched counts, totals kept elsewhere (the writer's rows per symbol, the
        feed's reconnects) and the feed's lag. ``stored`` is the writer's running total per
        symbol (``WriterStats.written_by_symbol``): only what grew since the last sync is added."""
        metrics_publish()
        if stored:
            self._sync_stored(stored)
        if reconnects is not None and reconnects > self._reconnects:
            FEED_RECONNECTS.labels(self.source).inc(reconnects - self._reconnects)
            self._reconnects = reconnects
        count = self._received.total  # published above
        if count > self._synced:  # something arrived since the last sync
            self._synced = count
            ts = getattr(self.last_event, "ts", None)
            if (
                isinstance(ts, datetime)
                and ts.tzinfo is not None  # a naive time is the validator's to report
                and (self._newest is None or ts > self._newest)
            ):
                self._newest = ts
            now = time.time()
            FEED_LAST_MESSAGE.labels(self.source).set(now)
            if self._newest is not None:
                FEED_LAG.labels(self.source).set(max(now - self._newest.timestamp(), 0.0))

    def _sync_stored(self, stored: Mapping[str, int]) -> None:
        seen = self._stored
        for symbol, total in stored.items():
            grown = total - seen.get(symbol, 0)
            if grown <= 0:
                continue
            child = self._stored_children.get(symbol)
            if child is None:
                child = self._stored_children[symbol] = FEED_STORED.labels(self.source, symbol)
            child.inc(grown)
            seen[symbol] = total


def metrics_http_server(host: str, port: int):
    """Serve this process's metrics on ``http://host:port/metrics``; return the server.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the series of every process writing there are merged;
    else this process's, and those of a qcluster child it runs (``runtrader --serve``: the
    same exposition as its ``/metrics``, ``worker_metrics.merged_registry``, decided at each
    scrape as the child may start later). Only the clients ``/metrics`` admits are served
    (``monitoring.metrics_server``). Stop it with ``server.shutdown()``.
    """
    import os

    from prometheus_client import CollectorRegistry
    from prometheus_client import multiprocess as mp

    from monitoring.metrics_server import gated_metrics_server

    registry = _OwnAndChild()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        registry.register(PUBLISH_ON_COLLECT)  # this process's batches reach its files first
        mp.MultiProcessCollector(registry)
    return gated_metrics_server(host, port, registry)


class _OwnAndChild:
    """The default registry, merged with the qcluster child's series when there is a child."""

    def collect(self):
        """Yield the families a scrape shows (the interface ``generate_latest`` reads)."""
        from prometheus_client import REGISTRY

        from monitoring.worker_metrics import merged_registry

        yield from (merged_registry() or REGISTRY).collect()

    def restricted_registry(self, names):
        """Only the families ``names`` pick (a scrape's ``name[]`` parameters)."""
        return _Restricted(self, frozenset(names))


class _Restricted:
    __slots__ = ("_names", "_registry")

    def __init__(self, registry, names: frozenset) -> None:
        self._registry, self._names = registry, names

    def collect(self):
        """Yield the families (and samples) of the names asked for."""
        for metric in self._registry.collect():
            restricted = metric._restricted_metric(self._names)
            if restricted:
                yield restricted


class TimedPredictor:
    """Wrap a live predictor: time each ``predict`` and count the predictions it makes."""

    def __init__(self, predictor, model: str) -> None:
        self.predictor = predictor
        self.model = model
        self._latency = HistogramBatch(ML_INFERENCE, model)
        self._counts = CounterBatch(ML_PREDICTIONS, model)  # symbol
        batches_register(self, (self._latency, self._counts))

    def predict(self, bar, *args, **kwargs):
        """Run the wrapped predictor on ``bar``, observing its latency."""
        started = time.perf_counter()
        try:
            output = self.predictor.predict(bar, *args, **kwargs)
        finally:
            self._latency.observe(time.perf_counter() - started)
        if output is not None:
            self._counts.add(getattr(bar, "symbol", ""))
        return output

    def __getattr__(self, name: str):
        return getattr(self.predictor, name)
