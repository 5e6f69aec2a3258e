"""Replay a recorded paper session through the engine and report drift against what it did.

``runtrader`` records every market event it saw (trades, quotes, books) and a ``session_start``
event with its configuration and starting state. ``replay_account`` rebuilds the same engine —
``MarketDataPipeline`` → ``TradingSession`` (strategies, ``RiskChecker``, ``StopEnforcer``) →
``OrderManager`` → ``PaperVenue`` — from that record, feeds it the recorded events in their
original order, and compares its orders and fills with the stored ones, trade by trade. Orders
submitted by operators or the API during the session are not replayed and show up as drift.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from backtesting.report_paths import report_path_in_reports_dir
from marketdata.engine.events import BookSnapshot, Quote, Side, Trade
from marketdata.models import BookSnapshot as BookRow
from marketdata.models import Quote as QuoteRow
from marketdata.models import TradeTick
from marketdata.pipeline import MarketDataPipeline
from monitoring.models import SystemEvent
from risk.engine.checks import RiskChecker
from risk.engine.enforcer import StopEnforcer, stop_rules
from risk.selectors import lot_sizes
from risk.services import limit_specs_load
from trading.engine.oms import OrderManager
from trading.engine.orders import Fill, Order
from trading.engine.portfolio import Portfolio, PositionSnapshot
from trading.engine.runner import StrategyRunner
from trading.engine.session import TradingSession
from trading.engine.strategies import create_strategy
from trading.engine.venue import PaperVenue, VenueConfig
from trading.models import Account
from trading.models import Order as OrderRow
from trading.session_record import session_sizer, warmup_bars

PRICE_TOLERANCE = Decimal("0")  # the replay must agree exactly: same engine, same events


class ReplayError(ValueError):
    """Nothing to replay (no recorded session or market data)."""


@dataclass(slots=True)
class Drift:
    """One difference between the live session and its replay."""

    index: int
    kind: str  # "missing_in_replay" | "extra_in_replay" | "order" | "fill"
    field: str
    live: Any
    replay: Any
    price_diff: str = ""
    time_diff_s: float | None = None


@dataclass(slots=True)
class DriftReport:
    """The comparison of a session with its replay."""

    account: str
    session: dict
    events: int
    live_orders: int
    replay_orders: int
    live_fills: int
    replay_fills: int
    drifts: list[Drift] = field(default_factory=list)

    @property
    def zero_drift(self) -> bool:
        """Return True when every order and fill matched exactly."""
        return not self.drifts

    def as_dict(self) -> dict:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["zero_drift"] = self.zero_drift
        return json.loads(json.dumps(data, default=str))

    def write(self, path: Path) -> Path:
        """Write the report as JSON and the drifts as CSV next to it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2))
        with path.with_suffix(".csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["index", "kind", "field", "live", "replay", "price_diff", "time_diff_s"]
            )
            for d in self.drifts:
                writer.writerow(
                    [d.index, d.kind, d.field, d.live, d.replay, d.price_diff, d.time_diff_s]
                )
        return path


def _session(account: Account, end: datetime) -> dict:
    event = (
        SystemEvent.objects.filter(
            component="runtrader", kind="session_start", context__account=account.name, ts__lte=end
        )
        .order_by("-ts")
        .first()
    )
    if event is None:
        event = (
            SystemEvent.objects.filter(
                component="runtrader", kind="session_start", context__account=account.name
            )
            .order_by("-ts")
            .first()
        )
    if event is None:
        raise ReplayError(f"no recorded runtrader session for account {account.name!r}")
    return event.context


def recorded_events(symbols: list[str], start: datetime, end: datetime) -> Iterator[object]:
    """Yield recorded quotes, books and trades in the order the session saw them."""
    rank = {s: i for i, s in enumerate(symbols)}
    keyed: list[tuple] = []
    for row in (
        QuoteRow.objects.filter(symbol__name__in=symbols, ts__gte=start, ts__lte=end)
        .select_related("symbol")
        .iterator(chunk_size=5000)
    ):
        event = Quote(
            row.symbol.name, row.ts, row.bid, row.bid_size, row.ask, row.ask_size, row.venue
        )
        keyed.append((row.ts, 0, rank[event.symbol], 0, event))
    for row in (
        BookRow.objects.filter(symbol__name__in=symbols, ts__gte=start, ts__lte=end)
        .select_related("symbol")
        .iterator(chunk_size=5000)
    ):
        event = BookSnapshot(
            row.symbol.name,
            row.ts,
            tuple(map(tuple, row.bids)),
            tuple(map(tuple, row.asks)),
            row.venue,
            row.sequence,
        )
        keyed.append((row.ts, 1, rank[event.symbol], 0, event))
    for row in (
        TradeTick.objects.filter(symbol__name__in=symbols, ts__gte=start, ts__lte=end)
        .select_related("symbol")
        .iterator(chunk_size=5000)
    ):
        seq = int(row.trade_id) if row.trade_id.isdigit() else 0
        event = Trade(
            row.symbol.name,
            row.ts,
            row.price,
            row.size,
            row.venue,
            row.trade_id,
            Side(row.side) if row.side else None,
            seq or None,
        )
        keyed.append((row.ts, 2, rank[event.symbol], seq, event))
    keyed.sort(key=lambda k: k[:4])
    for item in keyed:
        yield item[4]


class _Recorder:
    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []

    def on_order(self, order: Order) -> None:
        self.orders[order.client_order_id] = order

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


def _engine(account: Account, session: dict) -> tuple[TradingSession, _Recorder]:
    venue = PaperVenue(
        VenueConfig(
            taker_fee_bps=Decimal(str(session["taker_fee_bps"])),
            maker_fee_bps=Decimal(str(session["maker_fee_bps"])),
        )
    )
    risk = RiskChecker(limit_specs_load(account=account), lot_sizes=lot_sizes())
    stops_opts = session.get("stops") or {}
    stops = StopEnforcer(
        account.name,
        stop_rules(
            stop_loss=stops_opts.get("stop_loss"),
            trailing=stops_opts.get("trailing_stop"),
            atr_multiple=stops_opts.get("atr_stop"),
            max_hold=stops_opts.get("max_hold"),
        ),
    )
    recorder = _Recorder()
    oms = OrderManager(venue, hook=risk, listeners=[recorder, stops])
    portfolio = Portfolio(account.name, Decimal(str(session["cash"])), margin=account.margin())
    oms.add_account(portfolio)
    portfolio.restore(
        cash=Decimal(str(session["cash"])),
        positions=[
            PositionSnapshot(p["symbol"], Decimal(str(p["quantity"])), Decimal(str(p["avg_price"])))
            for p in session.get("positions", [])
        ],
    )
    runner = StrategyRunner(oms, bars_to_venue=False)
    runner.sizer = session_sizer(session)  # as the session sized its entries
    if session.get("strategy"):
        params = {k: _number(v) for k, v in (session.get("params") or {}).items()}
        runner.add(
            create_strategy(session["strategy"], **params), account.name, symbols=session["symbols"]
        )
    for spec in session.get("strategies") or ():  # several on the account, as the runtime adds them
        params = {k: _number(v) for k, v in (spec.get("params") or {}).items()}
        runner.add(
            create_strategy(spec["name"], **params),
            account.name,
            strategy_id=spec.get("strategy_id"),
            symbols=list(spec.get("symbols") or ()) or session["symbols"],
        )
    trading = TradingSession(
        oms, runner, account.name, timeframe=session["timeframe"], risk=risk, stops=stops
    )
    return trading, recorder


def _number(value: Any) -> Any:
    """Recorded params are JSON strings for Decimals: turn numeric strings back into Decimal."""
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


def replay_account(*, account: Account, start: datetime, end: datetime) -> DriftReport:
    """Replay the account's recorded session in [start, end] and compare with what it did."""
    session = _session(account, end)
    trading, recorder = _engine(account, session)
    pipeline = MarketDataPipeline(source=session.get("feed", "sim"))
    count = 0
    started = False
    for event in recorded_events(session["symbols"], start, end):
        if not started:
            trading.runner.start(event.ts)
            trading.runner.warm_up(warmup_bars(session), event.ts)  # the session's warm-up
            started = True
        count += 1
        for out in pipeline.process(event):
            trading.on_event(out)
        trading.drain_risk()
    if count == 0:
        raise ReplayError(f"no recorded market data for {session['symbols']} in {start}..{end}")
    return _compare(account, session, start, end, count, recorder)


def _live_orders(account: Account, start: datetime, end: datetime) -> list[OrderRow]:
    return list(
        OrderRow.objects.filter(account=account, created_at__gte=start, created_at__lte=end)
        .select_related("symbol")
        .prefetch_related("fills")
        .order_by("created_at", "id")
    )


def _compare(account, session, start, end, count, recorder) -> DriftReport:
    live = _live_orders(account, start, end)
    # Stable sort: orders created at the same instant stay in creation order, as stored live.
    replayed = sorted(recorder.orders.values(), key=lambda o: o.created_ts)
    fills_by_order: dict[str, list[Fill]] = {}
    for fill in recorder.fills:
        fills_by_order.setdefault(fill.order_id, []).append(fill)
    report = DriftReport(
        account.name,
        session,
        count,
        len(live),
        len(replayed),
        sum(o.fills.count() for o in live),
        len(recorder.fills),
    )
    for i in range(max(len(live), len(replayed))):
        if i >= len(replayed):
            report.drifts.append(Drift(i, "missing_in_replay", "order", _describe(live[i]), None))
        elif i >= len(live):
            report.drifts.append(
                Drift(i, "extra_in_replay", "order", None, _describe_engine(replayed[i]))
            )
        else:
            report.drifts += _order_drift(
                i, live[i], replayed[i], fills_by_order.get(replayed[i].client_order_id, [])
            )
    return report


def _order_drift(i: int, row: OrderRow, order: Order, fills: list[Fill]) -> list[Drift]:
    drifts = []
    pairs = {
        "symbol": (row.symbol.name, order.symbol),
        "side": (row.side, order.side.value),
        "type": (row.type, order.type.value),
        "quantity": (row.quantity, order.quantity),
        "status": (row.status, order.status.value),
        "filled_quantity": (row.filled_quantity, order.filled_quantity),
        "strategy": (row.strategy, order.strategy),
    }
    for name, (a, b) in pairs.items():
        if a != b:
            drifts.append(Drift(i, "order", name, a, b))
    if row.created_at != order.created_ts:
        drifts.append(
            Drift(
                i,
                "order",
                "created_at",
                row.created_at,
                order.created_ts,
                time_diff_s=(order.created_ts - row.created_at).total_seconds(),
            )
        )
    live_fills = sorted(row.fills.all(), key=lambda f: (f.ts, f.id))
    for j in range(max(len(live_fills), len(fills))):
        if j >= len(fills) or j >= len(live_fills):
            drifts.append(Drift(i, "fill", f"fill[{j}]", _fill(live_fills, j), _fill(fills, j)))
            continue
        a, b = live_fills[j], fills[j]
        if a.price != b.price or a.quantity != b.quantity or a.ts != b.ts or a.fee != b.fee:
            drifts.append(
                Drift(
                    i,
                    "fill",
                    f"fill[{j}]",
                    f"{a.quantity}@{a.price}",
                    f"{b.quantity}@{b.price}",
                    price_diff=str(b.price - a.price),
                    time_diff_s=(b.ts - a.ts).total_seconds(),
                )
            )
    return drifts


def _fill(fills: list, j: int) -> str | None:
    return f"{fills[j].quantity}@{fills[j].price}" if j < len(fills) else None


def _describe(row: OrderRow) -> str:
    return f"{row.side} {row.quantity} {row.symbol.name} {row.type} [{row.status}]"


def _describe_engine(order: Order) -> str:
    return (
        f"{order.side.value} {order.quantity} {order.symbol} {order.type.value} "
        f"[{order.status.value}]"
    )


def default_report_path(account: Account) -> Path:
    """Return where a drift report goes by default (inside REPORTS_DIR, whatever the name)."""
    return report_path_in_reports_dir("drift_", account.name, ".json")
