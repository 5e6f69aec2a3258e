"""The market-data path shared by ``ingest`` and ``runtrader``: validate, then aggregate.

``MarketDataPipeline.process(event)`` returns what should be stored and forwarded: accepted or
flagged events, the bars the aggregators closed, and ``QualityRecord``s for every flagged,
quarantined or malformed input. It never raises on bad data. Django-free.

Before any per-symbol state is touched, an event is screened: events of symbols the feed did not
subscribe (or, without a subscription list, beyond the first ``max_symbols`` distinct symbols)
are dropped and counted (``unsubscribed``), so a flood of unknown symbols grows no state and
reaches no table; events stamped further than the configured horizon from the pipeline's clock
are quarantined (rule ``time_horizon``), so one trade dated 2200 cannot run the bars ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from marketdata.adapters.base import Malformed
from marketdata.constants import (  # noqa: F401 - re-exported
    BASE_TIMEFRAMES,
    DEFAULT_FUTURE_HORIZON,
    RESAMPLED_TIMEFRAMES,
)
from marketdata.engine.aggregator import BarAggregator, BarResampler
from marketdata.engine.events import (
    TIMEFRAME_SECONDS,
    Bar,
    BookDelta,
    BookSnapshot,
    Quote,
    SentimentReading,
    Trade,
)
from marketdata.engine.quality import ACCEPTED, QualityValidator, ValidationResult, Verdict
from marketdata.engine.trade_batch import TradeColumns

logger = logging.getLogger(__name__)

# A run of trades shorter than this is cheaper one by one than in bulk.
MIN_BATCH = 32
# What the validator raises on an event it cannot read (wrong types): recorded as malformed.
MALFORMED_ERRORS = (TypeError, ValueError, AttributeError)
# Closed bars stay amendable by late trades for this long (600 windows of 1s, 10 of 1m). A horizon
# counted in windows (600 for every timeframe) kept 10 hours of 1m bars per symbol: a cache that
# a 60-minute soak at speed 10 was still filling (+12 MB at 50 symbols). Later trades are kept
# in the aggregator's bounded ``late`` buffer, never dropped.
AMEND_SECONDS = 600


def amend_windows(timeframe: str) -> int:
    """Return how many closed windows of ``timeframe`` late trades may amend."""
    return max(1, AMEND_SECONDS // TIMEFRAME_SECONDS[timeframe])


# Without a subscription list, at most this many distinct symbols get per-symbol state.
MAX_SYMBOLS = 1_000
# Logs of dropped unsubscribed events: the first few, then one in this many.
UNSUBSCRIBED_LOG_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class EventHorizon:
    """How far from the pipeline's clock an event's timestamp may lie before it is quarantined.

    ``future``: clocks of venues and of this host disagree by seconds, never by minutes; an event
    further ahead is a broken timestamp, and accepting it would close every bar building now.
    ``past``: None accepts any age (replays, delayed plans, reconnect catch-up); old trades are
    late only for their own symbol, so they cannot stop the others.
    """

    future: timedelta | None = DEFAULT_FUTURE_HORIZON
    past: timedelta | None = None

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """Return the earliest and latest timestamps accepted at ``now``."""
        return (
            None if self.past is None else now - self.past,
            None if self.future is None else now + self.future,
        )


@dataclass(frozen=True, slots=True)
class QualityRecord:
    """A flagged, quarantined or malformed input, to be stored as a ``DataQualityEvent``."""

    ts: datetime
    source: str
    symbol: str
    rule: str
    verdict: str  # "flag" | "quarantine"
    reason: str
    event_ts: datetime | None = None
    payload: dict = field(default_factory=dict)


@dataclass(slots=True)
class PipelineCounts:
    """What went through the pipeline."""

    received: int = 0
    accepted: int = 0
    flagged: int = 0
    quarantined: int = 0
    malformed: int = 0
    bars: int = 0
    late_trades: int = 0
    unsubscribed: int = 0  # events of symbols not subscribed (or beyond max_symbols): dropped
    partial_bars: int = 0  # unfinished bars discarded by ``flush(partial=False)``

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return {name: getattr(self, name) for name in self.__slots__}


_JSON_SCALARS = (str, int, float, bool, type(None))


def event_payload(event: object) -> dict:
    """Return a JSON-safe description of an event for the quality log."""
    if isinstance(event, Malformed):
        return {"raw": storable_text(event.raw[:2000])}
    out = {}
    for name in getattr(event, "__slots__", ()):
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif not isinstance(value, _JSON_SCALARS):
            value = str(value)
        if isinstance(value, str):
            value = storable_text(value)[:2000]
        out[name] = value
    return out


def storable_text(text: str) -> str:
    """Return ``text`` with NUL replaced: PostgreSQL refuses NUL in text and in JSON."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


class MarketDataPipeline:
    """Validate events, aggregate trades into 1s/1m bars and resample to 5m…1d.

    Provider bars of a timeframe the pipeline builds from trades are validated but not
    forwarded, so stored bars always agree with stored trades; other provider bars are
    forwarded and resampled.
    """

    def __init__(
        self,
        *,
        source: str,
        validator: QualityValidator | None = None,
        base_timeframes: Sequence[str] = BASE_TIMEFRAMES,
        resampled: Sequence[str] = RESAMPLED_TIMEFRAMES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        symbols: Iterable[str] | None = None,
        max_symbols: int = MAX_SYMBOLS,
        horizon: EventHorizon | None = None,
    ) -> None:
        """``symbols``: the feed's subscription (None: admit the first ``max_symbols`` seen);
        ``horizon``: quarantine events stamped too far from ``clock()`` (None: no check, for
        replays and simulations that run ahead of the wall clock).
        """
        self.source = source
        self.validator = validator or QualityValidator()
        self.clock = clock
        self.counts = PipelineCounts()
        self.subscribed = None if symbols is None else frozenset(symbols)
        self.max_symbols = max_symbols
        self.horizon = horizon
        self._admitted: set[str] = set()
        self.aggregators = [
            BarAggregator(tf, late="amend", amend_horizon=amend_windows(tf))
            for tf in base_timeframes
        ]
        self.built = set(base_timeframes)
        # Resample from the coarsest base timeframe (1m when present).
        self.resample_from = (
            "1m" if "1m" in self.built else (base_timeframes[-1] if base_timeframes else "1m")
        )
        # Source bars stay replaceable as long as trades can amend them; older ones are folded.
        self.resamplers = [BarResampler(tf, part_horizon=AMEND_SECONDS) for tf in resampled]

    def process(self, event: object) -> list[object]:
        """Return the outputs for one input event (never raises on bad data)."""
        self.counts.received += 1
        if isinstance(event, Malformed):
            self.counts.malformed += 1
            return [self._record(event, "", "malformed", Verdict.QUARANTINE, event.reason, None)]
        screened = self._screen(event, self._bounds())
        if screened is not None:
            return screened
        try:
            result = self.validator.validate(event)
        except MALFORMED_ERRORS as exc:
            return [self._malformed(event, exc)]
        outputs = self._quality_records(event, result)
        if result.verdict is Verdict.QUARANTINE:
            self.counts.quarantined += 1
            return outputs
        if result.verdict is Verdict.FLAG:
            self.counts.flagged += 1
        else:
            self.counts.accepted += 1
        outputs.extend(self._forward(event))
        return outputs

    def process_batch(self, events: Sequence[object]) -> list[object]:
        """Return the outputs of ``events`` in order, exactly as ``process`` one by one.

        Runs of at least ``MIN_BATCH`` trades are validated and aggregated in bulk
        (``QualityValidator.validate_trades``, ``BarAggregator.add_batch``): the same findings,
        bars, counts and state, at a fraction of the cost per trade. Anything else goes through
        ``process``.
        """
        out: list[object] = []
        begin = 0
        bounds = self._bounds()
        admissible = self._admissible
        others = [
            i
            for i, event in enumerate(events)
            # Screen every event in order, so symbols are admitted as one by one would.
            if not admissible(event, bounds) or type(event) is not Trade
        ]
        for end in [*others, len(events)]:
            if end - begin >= MIN_BATCH:
                out.extend(self._process_trades(events[begin:end]))
            else:
                for event in events[begin:end]:
                    out.extend(self.process(event))
            if end < len(events):
                out.extend(self.process(events[end]))
            begin = end + 1
        return out

    def flush(self, *, partial: bool = True) -> list[Bar]:
        """Close open bars at shutdown and return them with their resamples.

        ``partial=False`` (a graceful stop of a live feed) closes only the bars whose window has
        ended by the clock and discards the unfinished ones (counted in ``partial_bars``): a
        bar cut short by a shutdown must never be stored or traded as if complete.
        """
        if not partial:
            return self._flush_complete()
        closed: list[Bar] = []
        for agg in self.aggregators:
            closed.extend(agg.flush())
        return self._with_resamples(closed, final=True)

    def _flush_complete(self) -> list[Bar]:
        """Close the windows ended at ``clock()``, discard the rest; return the closed bars."""
        now = self.clock()
        closed: list[Bar] = []
        for agg in self.aggregators:
            closed.extend(agg.advance(now))
            self.counts.partial_bars += agg.discard_open()
        out = self._with_resamples(closed)
        for resampler in self.resamplers:
            ended = resampler.advance(now)
            self.counts.bars += len(ended)
            out.extend(ended)
            self.counts.partial_bars += resampler.discard_open()
        return out

    # -- screening: before any per-symbol state is created --------------------------------------
    def _bounds(self) -> tuple[datetime | None, datetime | None] | None:
        """Return the accepted timestamp range now (None when no horizon is set)."""
        return None if self.horizon is None else self.horizon.bounds(self.clock())

    def _admissible(self, event: object, bounds) -> bool:
        """Return True when ``event`` passes the symbol and time screens."""
        symbol = getattr(event, "symbol", None)
        if isinstance(symbol, str) and symbol and not self._admit_symbol(symbol):
            return False
        if bounds is None:
            return True
        ts = getattr(event, "ts", None)
        if not isinstance(ts, datetime) or ts.tzinfo is None:
            return True  # the validator reports it as malformed
        earliest, latest = bounds
        return (earliest is None or ts >= earliest) and (latest is None or ts <= latest)

    def _admit_symbol(self, symbol: str) -> bool:
        """Return True for a subscribed symbol (or one of the first ``max_symbols``)."""
        if self.subscribed is not None:
            return symbol in self.subscribed
        if symbol in self._admitted:
            return True
        if len(self._admitted) >= self.max_symbols:
            return False
        self._admitted.add(symbol)
        return True

    def _screen(self, event: object, bounds) -> list[object] | None:
        """Return the outputs of an event that fails a screen, None when it passes."""
        if self._admissible(event, bounds):
            return None
        symbol = getattr(event, "symbol", None)
        if isinstance(symbol, str) and symbol and not self._admit_symbol(symbol):
            self.counts.unsubscribed += 1
            dropped = self.counts.unsubscribed
            if dropped <= 10 or not dropped % UNSUBSCRIBED_LOG_EVERY:
                logger.warning(
                    "market data of an unsubscribed symbol dropped (%d so far): %.40r",
                    dropped,
                    symbol,
                    extra={"source": self.source},
                )
            return []
        self.counts.quarantined += 1
        ts = event.ts  # type: ignore[attr-defined]  # _admissible only fails on a datetime
        reason = f"timestamp {ts.isoformat()} outside the horizon {bounds[0]} .. {bounds[1]}"
        return [self._record(event, symbol or "", "time_horizon", Verdict.QUARANTINE, reason, ts)]

    def _process_trades(self, trades: Sequence[Trade]) -> list[object]:
        """Validate and aggregate a run of trades in bulk; outputs as ``process`` would give."""
        columns = TradeColumns.of(trades)
        if not columns.columnar:
            return [out for trade in trades for out in self.process(trade)]
        counts = self.counts
        counts.received += len(trades)
        counts.accepted += len(trades)  # corrected below for every trade with a finding
        results = self.validator.validate_trades(columns, catch=MALFORMED_ERRORS)
        records: dict[int, list[object]] = {}
        dropped: set[int] = set()
        for i in [i for i, result in enumerate(results) if result is not ACCEPTED]:
            result, trade = results[i], trades[i]
            if isinstance(result, Exception):
                counts.accepted -= 1
                records[i] = [self._malformed(trade, result)]
                dropped.add(i)
                continue
            records[i] = self._quality_records(trade, result)
            if result.verdict is Verdict.QUARANTINE:
                counts.accepted -= 1
                counts.quarantined += 1
                dropped.add(i)
            elif result.verdict is Verdict.FLAG:
                counts.accepted -= 1
                counts.flagged += 1
        kept = np.arange(len(trades))
        if dropped:
            kept = np.delete(kept, sorted(dropped))
        bars: dict[int, list[Bar]] = {}
        for agg in self.aggregators:
            for i, closed in agg.add_batch(columns, kept).items():
                bars.setdefault(i, []).extend(closed)
        counts.late_trades = sum(a.stats.late_trades for a in self.aggregators)
        return self._assemble(trades, records, dropped, bars)

    def _assemble(
        self,
        trades: Sequence[Trade],
        records: dict[int, list[object]],
        dropped: set[int],
        bars: dict[int, list[Bar]],
    ) -> list[object]:
        """Lay out a run's outputs per trade: its records, the trade, its bars and resamples."""
        out: list[object] = []
        begin = 0
        for i in sorted(records.keys() | bars.keys()):
            out.extend(trades[begin:i])
            out.extend(records.get(i, ()))
            if i not in dropped:
                out.append(trades[i])
                out.extend(self._with_resamples(bars.get(i, ())))
            begin = i + 1
        out.extend(trades[begin:])
        return out

    def _forward(self, event: object) -> list[object]:
        if isinstance(event, Trade):
            bars: list[Bar] = []
            for agg in self.aggregators:
                bars.extend(agg.add(event))
            self.counts.late_trades = sum(a.stats.late_trades for a in self.aggregators)
            return [event, *self._with_resamples(bars)]
        if isinstance(event, Bar):
            if event.timeframe in self.built:
                return []
            return [event, *self._with_resamples([event])]
        if isinstance(event, Quote | BookSnapshot | BookDelta | SentimentReading):
            return [event]
        return []

    def _with_resamples(self, bars: Iterable[Bar], final: bool = False) -> list[Bar]:
        out = list(bars)
        for bar in list(out):
            if bar.timeframe == self.resample_from:
                for resampler in self.resamplers:
                    out.extend(resampler.add(bar))
        if final:
            for resampler in self.resamplers:
                out.extend(resampler.flush())
        self.counts.bars += len(out)
        return out

    def _quality_records(self, event: object, result: ValidationResult) -> list[QualityRecord]:
        if result.verdict is Verdict.ACCEPT:
            return []
        return [
            self._record(
                event,
                f.symbol or getattr(event, "symbol", ""),
                str(f.rule),
                f.verdict,
                f.reason,
                getattr(event, "ts", None),
            )
            for f in result.findings
            if f.verdict is not Verdict.ACCEPT
        ]

    def _malformed(self, event: object, exc: Exception) -> QualityRecord:
        """Count and record an event the validator could not even read."""
        self.counts.malformed += 1
        symbol = getattr(event, "symbol", "")
        reason = f"{type(exc).__name__}: {exc}"
        return self._record(event, symbol, "malformed", Verdict.QUARANTINE, reason, None)

    def _record(self, event, symbol, rule, verdict, reason, event_ts) -> QualityRecord:
        record = QualityRecord(
            ts=self.clock(),
            source=self.source,
            symbol=storable_text(symbol) if isinstance(symbol, str) else symbol,
            rule=rule,
            verdict=str(verdict),
            reason=storable_text(reason),
            event_ts=event_ts,
            payload=event_payload(event),
        )
        log = logger.warning if verdict == Verdict.QUARANTINE else logger.info
        log(
            "market data %s: %s",
            record.verdict,
            reason,
            extra={"rule": rule, "symbol": symbol, "source": self.source},
        )
        return record
