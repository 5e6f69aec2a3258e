"""What the running engine reads from and writes to the database besides its own trades.

Everything here runs on the runtime's database thread: reloading risk limits and sizing policies
edited in the admin, noticing trading-state changes, picking up orders submitted through the API,
cancel requests, storing risk events and mode changes the risk engine raised, and heartbeats.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketdata.engine.events import Bar as EngineBar
from marketdata.models import Symbol
from monitoring.services import system_event_record
from risk.engine.events import ModeChangeRequest, RiskEventRecord
from risk.engine.limits import LimitSpec
from risk.engine.sizing import PolicySizer
from risk.selectors import lot_sizes, sizing_policies_version, sizing_rules_for
from risk.services import (
    limit_specs_load,
    limits_version,
    risk_events_record,
    trading_mode_apply,
    trading_state_ensure,
)
from trading.engine.orders import Order as EngineOrder
from trading.models import Account
from trading.persistence import TradingStore, account_fence

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ControlState:
    """Changes to apply on the loop; ``None`` means unchanged since the last poll."""

    limits: list[LimitSpec] | None = None
    sizer: PolicySizer | None = None
    mode: str | None = None
    lot_sizes: dict[str, Decimal] = field(default_factory=dict)
    new_orders: list[EngineOrder] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    # symbol -> (model id, loaded Predictor or None when the symbol has no active model)
    models: dict[str, tuple[int | None, object | None]] | None = None


ORDER_CHECK_DECISIONS = ("reject", "reduce")


def coalesce_order_checks(events: list[RiskEventRecord]) -> list[RiskEventRecord]:
    """Return ``events`` with the repeats of one order check folded into its first occurrence.

    A strategy asking again and again for what a limit refuses (every bar, on fifty symbols)
    raised one stored event and one alert per order: at the soak's pace thousands a minute, more
    than the database thread could store, so they queued in memory without end. The rejected
    orders themselves are stored one by one with their reason; their risk events with the same
    limit, symbol, side and strategy become one, counted (``context["repeats"]``, the last
    one's time and quantity). Other events (breaches, mode changes) are kept as they are.
    """
    merged: dict[tuple, int] = {}  # group key -> index in out
    counts: dict[int, tuple[int, RiskEventRecord]] = {}
    out: list[RiskEventRecord] = []
    for event in events:
        ctx = event.context
        if ctx.get("decision") not in ORDER_CHECK_DECISIONS:
            out.append(event)
            continue
        key = (event.limit_kind, event.severity, event.account, ctx.get("decision"),
               ctx.get("symbol"), ctx.get("side"), ctx.get("strategy"))  # fmt: skip
        at = merged.get(key)
        if at is None:
            merged[key] = len(out)
            out.append(event)
        else:
            n, _ = counts.get(at, (1, event))
            counts[at] = (n + 1, event)
    for at, (n, last) in counts.items():
        first = out[at]
        out[at] = replace(
            first,
            message=f"{first.message} (x{n}, the last at {last.ts:%H:%M:%S})"
            if last.ts else f"{first.message} (x{n})",
            context={**first.context, "repeats": n,
                     "last_ts": last.ts.isoformat() if last.ts else None,
                     "last_quantity": last.context.get("quantity")},
        )  # fmt: skip
    return out


class RuntimeControl:
    """Database side of the control loop for one account."""

    def __init__(
        self,
        account_name: str,
        *,
        symbols: Iterable[str] = (),
        timeframe: str = "1m",
        model_name: str | None = None,
        use_models: bool = False,
    ) -> None:
        self.account_name = account_name
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.model_name = model_name
        self.use_models = use_models
        self._model_ids: dict[str, int | None] = {}
        self._live_inputs: dict[str, object] = {}  # symbol -> models_ml LiveInputsPredictor
        self.store = TradingStore(account_name)
        self._limits_version: tuple | None = None
        self._sizing_version: tuple | None = None
        self._state_seen: tuple | None = None
        self._risk_outbox: deque[tuple[list[RiskEventRecord], list[ModeChangeRequest]]] = deque()

    @property
    def account(self) -> Account:
        """Return the account row."""
        return self.store.account

    def poll(
        self, force: bool = False, working: Iterable[str] = (), handled: Iterable[str] = ()
    ) -> ControlState:
        """Return what changed in the database since the last poll."""
        self.flush_risk()  # our own mode changes must be stored before we read the state back
        account = self.account
        state = ControlState()
        version = limits_version(account=account)
        if force or version != self._limits_version:
            self._limits_version = version
            state.limits = limit_specs_load(account=account)
        sizing = sizing_policies_version(account=account)
        if force or sizing != self._sizing_version:
            self._sizing_version = sizing
            state.sizer = self.sizer()
        row = trading_state_ensure(account=account)
        seen = (row.state, row.changed_at)
        if force or seen != self._state_seen:
            self._state_seen = seen
            state.mode = row.state
        if force:
            state.lot_sizes = lot_sizes()
        if self.use_models:
            state.models = self._models_changed(force)
            for live in self._live_inputs.values():  # sentiment/on-chain inputs of the models
                live.refresh(timezone.now())
        working = set(working)
        state.cancels = [cid for cid in self.store.cancel_requests(working) if cid in working]
        state.new_orders = self.store.pending_api_orders(set(handled) | working)
        return state

    def sizer(self) -> PolicySizer:
        """Return the account's sizing policies for strategies trading on ``timeframe``."""
        from marketdata.engine.events import TIMEFRAME_SECONDS

        default, by_strategy = sizing_rules_for(account=self.account)
        year = Decimal(365 * 24 * 3600) / TIMEFRAME_SECONDS[self.timeframe]
        return PolicySizer(default, by_strategy, year)

    def stored_bars(self, count: int, now: datetime) -> list[EngineBar]:
        """Return up to ``count`` stored bars per symbol whose window ended by ``now``, by time.

        The strategies' warm-up history on a live feed (``ingest`` or an earlier run stored it).
        """
        from marketdata.engine.events import TIMEFRAME_SECONDS
        from marketdata.models import Bar

        last_start = now - timedelta(seconds=TIMEFRAME_SECONDS[self.timeframe])
        bars: list[EngineBar] = []
        for symbol in self.symbols:
            stored = Bar.objects.filter(  # venue bars only: a live feed never warms up on sim
                symbol__name=symbol, timeframe=self.timeframe, simulated=False
            )
            rows = (
                stored.filter(ts__lte=last_start)
                .order_by("-ts")
                .values_list("ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")
            )
            bars += [
                EngineBar(symbol, self.timeframe, ts, o, h, low, c, v, vwap, n, "database")
                for ts, o, h, low, c, v, vwap, n in reversed(rows[:count])
            ]
        bars.sort(key=lambda bar: bar.ts)  # stable: symbols stay in subscription order per ts
        return bars

    def queue_risk(self, events: list[RiskEventRecord], changes: list[ModeChangeRequest]) -> None:
        """Queue risk output from the loop thread (deque appends are thread-safe)."""
        self._risk_outbox.append((events, changes))

    def flush_risk(self) -> None:
        """Store queued risk events and apply queued trading-state changes.

        Everything queued goes in one transaction, the repeats of an order check coalesced
        (``coalesce_order_checks``): the cost of a flush follows the distinct events, not how
        many orders a strategy had refused, so the queue never outgrows the database thread.
        """
        while self._risk_outbox:
            # Popped only once stored: a failed write leaves the entries for the next attempt.
            taken = len(self._risk_outbox)
            entries = [self._risk_outbox[i] for i in range(taken)]
            events = coalesce_order_checks([e for batch, _ in entries for e in batch])
            changes = [c for _, batch in entries for c in batch]
            account = self.account
            with transaction.atomic():
                fence = account_fence(account.name)
                if fence is not None:  # an engine fenced out of its account changes nothing
                    fence.check()
                risk_events_record(account=account, records=events, publish=False)
                states = [
                    trading_mode_apply(account=account, request=change, publish=False)
                    for change in changes
                ]
            for _ in range(taken):
                self._risk_outbox.popleft()
            for state in states:
                self._state_seen = (state.state, state.changed_at)
                logger.warning(
                    "trading state changed by risk engine",
                    extra={"account": account.name, "state": state.state, "reason": state.reason},
                )

    def resync_mode(self) -> None:
        """Make the next poll report the stored trading state even if it looks unchanged."""
        self._state_seen = None

    def record_heartbeat(self, context: dict) -> None:
        """Store a heartbeat ``SystemEvent`` (also how operators tell the engine is alive)."""
        status = context.get("status", "running")
        system_event_record(
            component="runtrader",
            kind="heartbeat",
            message=f"{status} at {timezone.now():%H:%M:%S}",
            context=context,
        )

    def record_session(self, kind: str, context: dict) -> None:
        """Store a ``session_start`` / ``session_end`` event (what replays read)."""
        system_event_record(
            component="runtrader",
            kind=kind,
            message=f"{kind} {self.account_name}",
            context={"account": self.account_name, **context},
        )

    # ------------------------------------------------------------------ models

    def _models_changed(self, force: bool) -> dict[str, tuple[int | None, object | None]] | None:
        """Return newly (de)activated models per symbol, loaded and primed; None if unchanged."""
        from models_ml.selectors import active_model_for

        changed = {}
        for symbol in self.symbols:
            model = active_model_for(name=self.model_name, symbol=symbol, timeframe=self.timeframe)
            model_id = model.pk if model is not None else None
            if not force and self._model_ids.get(symbol) == model_id:
                continue
            self._model_ids[symbol] = model_id
            self._live_inputs.pop(symbol, None)
            changed[symbol] = (model_id, self._load_predictor(model, symbol) if model else None)
        return changed or None

    def _load_predictor(self, model, symbol: str):
        """Load a model's artifact and prime it with the symbol's stored history."""
        from datetime import timedelta

        from marketdata.engine.events import TIMEFRAME_SECONDS
        from marketdata.selectors import bars_frame
        from models_ml.engine.inference import Predictor
        from models_ml.live_inputs import LiveInputsPredictor, with_live_inputs
        from models_ml.selectors import model_artifact_dir

        self._live_inputs.pop(symbol, None)
        try:
            predictor = Predictor.load(model_artifact_dir(model), model_name=str(model))
        except Exception:  # a bad artifact must not stop trading: log it, trade without it
            logger.exception("cannot load model %s", model)
            return None
        end = timezone.now()
        predictor = with_live_inputs(predictor, symbol=symbol, timeframe=self.timeframe)
        if isinstance(predictor, LiveInputsPredictor):
            predictor.refresh(end)
            self._live_inputs[symbol] = predictor
        span = timedelta(seconds=TIMEFRAME_SECONDS[self.timeframe] * predictor.warmup_bars * 2)
        history = bars_frame(symbol=symbol, timeframe=self.timeframe, start=end - span, end=end)
        if len(history):
            predictor.prime(symbol, history)
        logger.info(
            "model loaded",
            extra={"model": str(model), "symbol": symbol, "primed_bars": len(history)},
        )
        return predictor

    def store_predictions(self, predictions: list, model_ids: dict[str, int | None]) -> int:
        """Store predictions (direction and return rows) and cache the latest per symbol."""
        from django.core.cache import cache

        from models_ml.models import Prediction

        symbol_ids = dict(
            Symbol.objects.filter(name__in={p.symbol for p in predictions}).values_list(
                "name", "pk"
            )
        )
        rows = []
        for p in predictions:
            model_id = model_ids.get(p.symbol)
            if model_id is None:
                continue
            common = {
                "model_id": model_id,
                "symbol_id": symbol_ids[p.symbol],
                "ts": p.ts,
                "horizon": p.horizon,
                "confidence": min(1.0, max(0.0, p.confidence)),
            }
            rows.append(
                Prediction(
                    kind="direction",
                    value=p.value,
                    features={k: float(v) for k, v in p.features.items()},
                    **common,
                )
            )
            rows.append(Prediction(kind="return", value=p.expected_return, **common))
            cache.set(
                f"rrr:prediction:{p.symbol}",
                {
                    "model_id": model_id,
                    "ts": p.ts.isoformat(),
                    "probability_up": p.value,
                    "expected_return": p.expected_return,
                    "confidence": p.confidence,
                },
                3600,
            )
        Prediction.objects.bulk_create(rows, ignore_conflicts=True)
        return len(rows)


RESUME_HOW = (
    "a trader resumes it: the dashboard's Resume button, the admin (Risk › Trading states › "
    "resume), POST /api/v1/accounts/{pk}/resume, or /resume {name} in Telegram"
)
STATE_MEANS = {
    "reducing": "only orders that reduce a position are sent",
    "halted": "no order is sent",
}


def trading_state_notice(*, account: Account) -> str:
    """Return what a person must know when the account is not active ("" when it is): its
    state, since when and why, what the engine does meanwhile and how to resume it.

    The state is stored (``TradingState``) and read by every engine at start: a strategy that
    failed leaves its account reducing across restarts until a person resumes it."""
    row = trading_state_ensure(account=account)
    if row.state == "active":
        return ""
    who = row.changed_by.get_username() if row.changed_by_id else None
    by = f" by {who}" if who else ""
    return (
        f"account {account.name!r} is {row.state.upper()} since "
        f"{row.changed_at:%Y-%m-%d %H:%M:%S} UTC{by} ({row.reason or 'no reason given'}): "
        f"{STATE_MEANS.get(row.state, '')} until "
        + RESUME_HOW.format(pk=account.pk, name=account.name)
    )
