"""What the running engine reads from and writes to the database besides its own trades.

Everything here runs on the runtime's database thread: reloading risk limits edited in the admin,
noticing trading-state changes, picking up orders submitted through the API, cancel requests,
storing risk events and mode changes the risk engine raised, and heartbeats.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from marketdata.models import Symbol
from monitoring.services import system_event_record
from risk.engine.events import ModeChangeRequest, RiskEventRecord
from risk.engine.limits import LimitSpec
from risk.services import (
    limit_specs_load,
    limits_version,
    risk_events_record,
    trading_mode_apply,
    trading_state_ensure,
)
from trading.engine.orders import Order as EngineOrder
from trading.models import Account
from trading.persistence import TradingStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ControlState:
    """Changes to apply on the loop; ``None`` means unchanged since the last poll."""

    limits: list[LimitSpec] | None = None
    mode: str | None = None
    lot_sizes: dict[str, Decimal] = field(default_factory=dict)
    new_orders: list[EngineOrder] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)


class RuntimeControl:
    """Database side of the control loop for one account."""

    def __init__(self, account_name: str) -> None:
        self.account_name = account_name
        self.store = TradingStore(account_name)
        self._limits_version: tuple | None = None
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
        row = trading_state_ensure(account=account)
        seen = (row.state, row.changed_at)
        if force or seen != self._state_seen:
            self._state_seen = seen
            state.mode = row.state
        if force:
            state.lot_sizes = dict(Symbol.objects.values_list("name", "lot_size"))
        working = set(working)
        state.cancels = [cid for cid in self.store.cancel_requests(working) if cid in working]
        state.new_orders = self.store.pending_api_orders(set(handled) | working)
        return state

    def queue_risk(self, events: list[RiskEventRecord], changes: list[ModeChangeRequest]) -> None:
        """Queue risk output from the loop thread (deque appends are thread-safe)."""
        self._risk_outbox.append((events, changes))

    def flush_risk(self) -> None:
        """Store queued risk events and apply queued trading-state changes."""
        while self._risk_outbox:
            events, changes = self._risk_outbox.popleft()
            account = self.account
            risk_events_record(account=account, records=events, publish=False)
            for change in changes:
                state = trading_mode_apply(account=account, request=change, publish=False)
                self._state_seen = (state.state, state.changed_at)
                logger.warning(
                    "trading state changed by risk engine",
                    extra={"account": account.name, "state": state.state, "reason": state.reason},
                )

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
