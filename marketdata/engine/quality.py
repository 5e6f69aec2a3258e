"""Data-quality validation of normalised market-data events.

Every event gets a ``ValidationResult``: ACCEPT (clean), FLAG (suspicious but plausible: keep it,
record the finding) or QUARANTINE (impossible or malformed: do not use it, store it aside).
Quarantined events never update the validator's reference state, so a single bad print cannot
move the price reference and poison the checks of the events that follow.

The hot path (a clean trade) is O(1) amortised with no allocation beyond the result singleton:
rolling windows are deques with running sums, and the volume median uses a small sorted list.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from marketdata.engine.errors import QualityConfigError
from marketdata.engine.events import (
    TIMEFRAME_SECONDS,
    Bar,
    BookDelta,
    BookSnapshot,
    MarketEvent,
    Quote,
    SentimentReading,
    Trade,
)

if TYPE_CHECKING:
    from marketdata.engine.trade_batch import TradeColumns

_INF = math.inf
_MIN_TS = datetime.min.replace(tzinfo=UTC)
# Below this variance of log returns the z-score is meaningless (a flat price would make any tick
# an "outlier"); 1e-20 is a standard deviation of 1e-10, far below any real tick size.
_MIN_RETURN_VARIANCE = 1e-20
_EMPTY_SLOT = -(2**63)  # below every number an id ring holds
_DIGITS = "0123456789"
_NUMBER_LIMIT = 10**18  # ids of up to 18 digits are numbers (they fit an int64)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Verdict(StrEnum):
    """Outcome of validating one event, in increasing severity."""

    ACCEPT = "accept"
    FLAG = "flag"
    QUARANTINE = "quarantine"

    @property
    def severity(self) -> int:
        """Return 0, 1 or 2; a result's verdict is its most severe finding."""
        return _SEVERITY[self]


_SEVERITY = {Verdict.ACCEPT: 0, Verdict.FLAG: 1, Verdict.QUARANTINE: 2}


class QualityRule(StrEnum):
    """Names of the quality rules, as stored on DataQualityEvent rows."""

    GAP = "gap"
    SEQUENCE_GAP = "sequence_gap"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    STALE = "stale"
    OHLC = "ohlc_inconsistent"
    BAD_PRICE = "bad_price"
    BAD_SIZE = "bad_size"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_VALUE = "bad_value"
    CROSSED = "crossed"
    PRICE_SPIKE = "price_spike"
    VOLUME_SPIKE = "volume_spike"
    OUTLIER = "zscore_outlier"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired on an event."""

    rule: QualityRule
    verdict: Verdict
    reason: str
    symbol: str = ""
    ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Verdict for one event with the findings behind it."""

    verdict: Verdict
    findings: tuple[Finding, ...] = ()

    @property
    def quarantined(self) -> bool:
        """Return True when the event must not be used."""
        return self.verdict is Verdict.QUARANTINE

    @property
    def flagged(self) -> bool:
        """Return True when the event is usable but suspicious."""
        return self.verdict is Verdict.FLAG


ACCEPTED = ValidationResult(Verdict.ACCEPT, ())
# Sequence findings after which the event must not touch the reference state: a repeated
# sequence is a duplicate, a regressed one is older data.
_STOP_RULES = frozenset({QualityRule.DUPLICATE, QualityRule.OUT_OF_ORDER})


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """Per-symbol limits of the quality rules."""

    price_spike_pct: float = 0.20
    # A move beyond price_spike_pct confirmed by this many consecutive prints at the new level is
    # a real market move, not a bad print: the reference re-anchors instead of quarantining forever.
    spike_confirmations: int = 5
    volume_spike_multiple: float = 5.0
    volume_window: int = 50
    volume_min_samples: int = 20
    zscore_limit: float = 4.0
    zscore_window: int = 200
    zscore_min_samples: int = 50
    stale_after: timedelta = timedelta(seconds=30)
    bar_gap_tolerance: int = 0
    duplicate_memory: int = 10_000
    check_sequence: bool = True

    def __post_init__(self) -> None:
        """Reject thresholds that would disable a rule by accident."""
        positive = {
            "price_spike_pct": self.price_spike_pct,
            "spike_confirmations": self.spike_confirmations,
            "volume_spike_multiple": self.volume_spike_multiple,
            "volume_window": self.volume_window,
            "volume_min_samples": self.volume_min_samples,
            "zscore_limit": self.zscore_limit,
            "zscore_window": self.zscore_window,
            "zscore_min_samples": self.zscore_min_samples,
            "duplicate_memory": self.duplicate_memory,
        }
        for name, value in positive.items():
            if not value > 0:
                raise QualityConfigError(f"{name} must be positive, got {value!r}")
        if self.stale_after <= timedelta(0) or self.bar_gap_tolerance < 0:
            raise QualityConfigError("stale_after must be positive and bar_gap_tolerance >= 0")


class _Series:
    """Reference state of one stream (venue, symbol[, timeframe]) of prices and sizes."""

    __slots__ = (
        "t",
        "last_ts",
        "last_price",
        "last_seq",
        "streak_price",
        "streak",
        "returns",
        "rsum",
        "rsq",
        "pushes",
        "sizes",
        "sorted_sizes",
        "id_prefix",
        "id_ring",
        "id_next",
        "id_next_number",
        "ids",
        "id_fifo",
    )

    def __init__(self, thresholds: QualityThresholds) -> None:
        self.t = thresholds
        self.last_ts = _MIN_TS
        self.last_price = 0.0
        self.last_seq: int | None = None
        self.streak_price = 0.0
        self.streak = 0
        self.returns: deque[float] = deque()
        self.rsum = 0.0
        self.rsq = 0.0
        self.pushes = 0
        self.sizes: deque[float] = deque()
        self.sorted_sizes: list[float] = []
        self.id_prefix = ""
        self.id_ring: array[int] | None = None
        self.id_next: str | None = None  # the id that follows the last numbered one seen
        self.id_next_number = 0
        self.ids: set[object] = set()
        self.id_fifo: deque[object] = deque(maxlen=thresholds.duplicate_memory)

    def seen(self, key: object) -> bool:
        """Return True if key was seen recently; remember it otherwise (bounded memory).

        Numbered ids ("12345", "sim-12345": one prefix per stream) go to a fixed ring of
        ``duplicate_memory`` numbers indexed by value (``seen_number``); any other key to a
        FIFO of the last ``duplicate_memory`` keys.
        """
        if key == self.id_next:  # the id after the last one, the usual case: nothing to parse
            number = self.id_next_number
        else:
            number = self._id_number(key)
            if number is None:
                return self._seen_other(key)
        following = number + 1
        if following < _NUMBER_LIMIT:
            self.id_next_number = following
            self.id_next = self.id_prefix + str(following)
        ring = self.id_ring  # seen_number, inlined: this runs for every trade
        slot = number % len(ring)
        held = ring[slot]
        if held == number:
            return True
        if held < number:
            ring[slot] = number
        return False

    def _id_number(self, key: object) -> int | None:
        """Return the number of a numbered id with this stream's prefix (the first sets it)."""
        numbered = _numbered(key)
        if numbered is None:
            return None
        if self.id_ring is None:
            self.id_prefix = numbered[0]
            self.id_ring = array("q", (_EMPTY_SLOT,)) * self.t.duplicate_memory
        return numbered[1] if numbered[0] == self.id_prefix else None

    def seen_number(self, number: int) -> bool:
        """Return True if number was seen and not yet pushed out of the ring; remember it.

        Slot ``number % duplicate_memory`` holds the largest number of its class seen, so the
        ring remembers every number within ``duplicate_memory`` of the largest one (for ids
        that count up, the last ``duplicate_memory`` ids) in 8 bytes each, allocated once.
        A number older than the one in its slot counts as forgotten, as the FIFO forgets.
        """
        ring = self.id_ring
        if ring is None:
            ring = self.id_ring = array("q", (_EMPTY_SLOT,)) * self.t.duplicate_memory
        slot = number % len(ring)
        held = ring[slot]
        if held == number:
            return True
        if held < number:
            ring[slot] = number
        return False

    def _seen_other(self, key: object) -> bool:
        """Check and remember a key that is not a numbered id (bounded FIFO and set)."""
        if key in self.ids:
            return True
        fifo = self.id_fifo
        if len(fifo) == fifo.maxlen:
            self.ids.discard(fifo[0])  # the append below pushes it out
        fifo.append(key)
        self.ids.add(key)
        return False

    def first_seen(self, keys: list[str]) -> int:
        """Return the index of the first key that may be a duplicate (len(keys) if none).

        Conservative: a key remembered at the start or repeated within ``keys`` stops the run
        (``seen`` one by one decides it), so no duplicate is ever inside the returned prefix.
        """
        local: set[str] = set()
        for j, key in enumerate(keys):
            if not key:
                continue
            if key in local or self._remembered(key):
                return j
            local.add(key)
        return len(keys)

    def _remembered(self, key: str) -> bool:
        """Return True if ``seen(key)`` would find key now, without remembering it."""
        numbered = _numbered(key)
        if numbered is not None and self.id_ring is not None and numbered[0] == self.id_prefix:
            ring = self.id_ring
            return ring[numbered[1] % len(ring)] == numbered[1]
        if numbered is not None and self.id_ring is None:
            return False
        return key in self.ids

    def remember(self, keys: list[str]) -> None:
        """Remember keys (none of them remembered yet) exactly as ``seen`` one by one would."""
        for key in keys:
            self.seen(key)

    def spike(self, price: float) -> tuple[Verdict, float] | None:
        """Check price against the last good price; re-anchor after confirmed level shifts."""
        ref = self.last_price
        limit = self.t.price_spike_pct
        if ref <= 0.0 or abs(price - ref) <= limit * ref:
            self.streak = 0
            return None
        move = price / ref - 1.0
        anchor = self.streak_price
        if self.streak and abs(price - anchor) <= limit * anchor:
            self.streak += 1
        else:
            self.streak_price = price
            self.streak = 1
        if self.streak < self.t.spike_confirmations:
            return Verdict.QUARANTINE, move
        # Confirmed new level: returns across the break would poison the z-score window.
        self.streak = 0
        self.last_price = 0.0
        self.returns.clear()
        self.rsum = self.rsq = 0.0
        return Verdict.FLAG, move

    def zscore(self, price: float) -> float:
        """Return the z-score of the log return to price (0 when undefined) and record it."""
        ref = self.last_price
        if ref <= 0.0:
            return 0.0
        r = math.log(price / ref)
        window = self.returns
        n = len(window)
        z = 0.0
        if n >= self.t.zscore_min_samples:
            mean = self.rsum / n
            var = self.rsq / n - mean * mean
            if var > _MIN_RETURN_VARIANCE:
                z = (r - mean) / math.sqrt(var)
        window.append(r)
        self.rsum += r
        self.rsq += r * r
        if n >= self.t.zscore_window:
            old = window.popleft()
            self.rsum -= old
            self.rsq -= old * old
        self.pushes += 1
        if self.pushes >= self.t.zscore_window:
            # Running sums drift with float error; an exact re-sum every window is O(1) amortised.
            self.pushes = 0
            self.rsum = math.fsum(window)
            self.rsq = math.fsum(x * x for x in window)
        return z

    def volume_ratio(self, size: float) -> float:
        """Return size / rolling median size (0 when undefined) and record size."""
        ordered = self.sorted_sizes
        n = len(ordered)
        ratio = 0.0
        if n >= self.t.volume_min_samples:
            median = ordered[n >> 1]
            if median > 0.0:
                ratio = size / median
        window = self.sizes
        window.append(size)
        insort(ordered, size)
        if n >= self.t.volume_window:
            del ordered[bisect_left(ordered, window.popleft())]
        return ratio


class QualityValidator:
    """Validate market-data events against per-symbol quality thresholds."""

    def __init__(
        self,
        thresholds_by_symbol: Mapping[str, QualityThresholds] | None = None,
        default: QualityThresholds | None = None,
    ) -> None:
        self.thresholds_by_symbol = dict(thresholds_by_symbol or {})
        self.default = default or QualityThresholds()
        self.rule_counts: dict[str, int] = {}
        self._series: dict[tuple[object, ...], _Series] = {}
        self._dispatch = {
            Trade: self.validate_trade,
            Bar: self.validate_bar,
            Quote: self._validate_quote,
            BookSnapshot: self._validate_book,
            BookDelta: self._validate_delta,
            SentimentReading: self._validate_sentiment,
        }

    def thresholds_for(self, symbol: str) -> QualityThresholds:
        """Return the thresholds that apply to symbol."""
        return self.thresholds_by_symbol.get(symbol, self.default)

    def validate(self, event: MarketEvent) -> ValidationResult:
        """Validate any market event and update the reference state unless quarantined."""
        handler = self._dispatch.get(type(event))
        if handler is None:
            raise TypeError(f"not a market event: {type(event).__name__}")
        return handler(event)

    def set_reference(self, symbol: str, price: float, *, venue: str) -> None:
        """Seed the last good trade price (e.g. the last stored close) before the first trade.

        Without a reference the first print of a stream cannot be judged a spike.
        """
        if not 0.0 < price < _INF:
            raise QualityConfigError(f"reference price must be positive and finite, got {price!r}")
        self.series_for(("t", venue, symbol), symbol).last_price = price

    def reset(self, symbol: str | None = None, venue: str | None = None) -> None:
        """Forget reference state (after a reconnect or resync), optionally per symbol/venue."""
        for key in list(self._series):
            if (symbol is None or key[2] == symbol) and (venue is None or key[1] == venue):
                del self._series[key]

    def stale_findings(
        self, now: datetime, symbols: Iterable[str] | None = None
    ) -> tuple[Finding, ...]:
        """Report symbols without a usable event for longer than their stale_after threshold.

        ``symbols`` lists what must be live; a listed symbol never seen at all is stale too.
        """
        last: dict[str, datetime] = {}
        for key, series in self._series.items():
            sym = key[2]
            if series.last_ts > last.get(sym, _MIN_TS):
                last[sym] = series.last_ts
        wanted = set(last) if symbols is None else set(symbols)
        findings = []
        for sym in sorted(wanted):
            seen = last.get(sym)
            limit = self.thresholds_for(sym).stale_after
            if seen is None or now - seen > limit:
                age = "never seen" if seen is None else f"last event {now - seen} ago"
                findings.append(self._finding(QualityRule.STALE, Verdict.FLAG, age, sym, now))
        return tuple(findings)

    # -- trades ------------------------------------------------------------------------------

    def validate_trade(self, trade: Trade) -> ValidationResult:
        """Validate one trade: malformed, duplicate, order, sequence, spike, volume, outlier."""
        series = self.series_for(("t", trade.venue, trade.symbol), trade.symbol)
        price = trade.price
        size = trade.size
        ts = trade.ts
        if not (0.0 < price < _INF and 0.0 < size < _INF) or ts.tzinfo is None:
            return self._reject(_malformed_trade(trade), trade.symbol, ts)
        if trade.trade_id and series.seen(trade.trade_id):
            reason = f"trade_id {trade.trade_id!r} already seen on {trade.venue}"
            return self._reject((QualityRule.DUPLICATE, reason), trade.symbol, ts)
        findings: list[Finding] | None = None
        if trade.sequence is not None and series.t.check_sequence:
            findings = self._sequence(series, trade.sequence, trade.symbol, ts)
            if findings and findings[-1].rule in _STOP_RULES:
                return self._result(findings)
        if ts < series.last_ts:
            return self._out_of_order(series, findings, trade.symbol, ts)
        findings = self._price_checks(series, price, size, trade.symbol, ts, findings)
        if findings is None:
            return ACCEPTED
        return self._result(findings)

    def validate_trades(
        self, columns: TradeColumns, *, catch: tuple[type[Exception], ...] = ()
    ) -> list[ValidationResult | Exception]:
        """Validate a run of trades; equal to ``validate_trade`` on each in turn, state included.

        Clean stretches of a stream are checked in bulk (``quality_batch``); a trade on which a
        rule could change the reference state goes through ``validate_trade``. An exception of
        a type in ``catch`` raised for one trade is returned in its place.
        """
        from marketdata.engine.quality_batch import validate_trade_batch

        return validate_trade_batch(self, columns, catch)

    def _price_checks(
        self,
        series: _Series,
        price: float,
        size: float,
        symbol: str,
        ts: datetime,
        findings: list[Finding] | None,
    ) -> list[Finding] | None:
        """Run spike, outlier and volume checks; update the reference unless quarantined."""
        spike = series.spike(price)
        if spike is not None:
            findings = self._spike_findings(series, spike, price, symbol, ts, findings)
            if spike[0] is Verdict.QUARANTINE:
                return findings
        t = series.t
        z = series.zscore(price)
        if z > t.zscore_limit or z < -t.zscore_limit:
            findings = findings or []
            findings.append(self.outlier_finding(z, t, symbol, ts))
        ratio = series.volume_ratio(size)
        if ratio > t.volume_spike_multiple:
            findings = findings or []
            findings.append(self.volume_finding(size, ratio, symbol, ts))
        series.last_price = price
        series.last_ts = ts
        return findings

    def outlier_finding(self, z: float, t: QualityThresholds, symbol: str, ts: datetime) -> Finding:
        """Flag a log return whose z-score is beyond the limit."""
        reason = f"log-return z-score {z:.1f} beyond {t.zscore_limit}"
        return self._finding(QualityRule.OUTLIER, Verdict.FLAG, reason, symbol, ts)

    def volume_finding(self, size: float, ratio: float, symbol: str, ts: datetime) -> Finding:
        """Flag a size that is a large multiple of the rolling median size."""
        reason = f"size {size:g} is {ratio:.1f}x the rolling median"
        return self._finding(QualityRule.VOLUME_SPIKE, Verdict.FLAG, reason, symbol, ts)

    def _spike_findings(
        self,
        series: _Series,
        spike: tuple[Verdict, float],
        price: float,
        symbol: str,
        ts: datetime,
        findings: list[Finding] | None,
    ) -> list[Finding]:
        """Describe a price spike (quarantined) or a confirmed level shift (flagged)."""
        verdict, move = spike
        findings = findings or []
        if verdict is Verdict.QUARANTINE:
            reason = (
                f"price {price:g} moved {move:+.1%} from last good price {series.last_price:g} "
                f"(limit {series.t.price_spike_pct:.0%})"
            )
        else:
            reason = (
                f"price level shift of {move:+.1%} confirmed by "
                f"{series.t.spike_confirmations} prints; reference re-anchored at {price:g}"
            )
        findings.append(self._finding(QualityRule.PRICE_SPIKE, verdict, reason, symbol, ts))
        return findings

    def _sequence(
        self, series: _Series, seq: int, symbol: str, ts: datetime
    ) -> list[Finding] | None:
        """Check a sequence number against the previous one of the same stream."""
        last = series.last_seq
        if last is None or seq == last + 1:
            series.last_seq = seq
            return None
        if seq == last:
            reason = f"sequence {seq} repeated"
            return [self._finding(QualityRule.DUPLICATE, Verdict.QUARANTINE, reason, symbol, ts)]
        if seq < last:
            reason = f"sequence {seq} after {last}"
            return [self._finding(QualityRule.OUT_OF_ORDER, Verdict.FLAG, reason, symbol, ts)]
        series.last_seq = seq
        reason = f"{seq - last - 1} message(s) missing between sequence {last} and {seq}"
        return [self._finding(QualityRule.SEQUENCE_GAP, Verdict.FLAG, reason, symbol, ts)]

    def _out_of_order(
        self, series: _Series, findings: list[Finding] | None, symbol: str, ts: datetime
    ) -> ValidationResult:
        """Flag an event older than the newest one; older data never moves the reference."""
        findings = findings or []
        reason = f"timestamp {ts.isoformat()} is before {series.last_ts.isoformat()}"
        findings.append(self._finding(QualityRule.OUT_OF_ORDER, Verdict.FLAG, reason, symbol, ts))
        return self._result(findings)

    # -- bars --------------------------------------------------------------------------------

    def validate_bar(self, bar: Bar) -> ValidationResult:
        """Validate one bar: OHLC consistency, duplicate, order, gap, spike, volume, outlier."""
        seconds = TIMEFRAME_SECONDS.get(bar.timeframe)
        if seconds is None:
            reason = f"unknown timeframe {bar.timeframe!r}"
            return self._reject((QualityRule.BAD_VALUE, reason), bar.symbol, bar.ts)
        malformed = _malformed_bar(bar)
        if malformed is not None:
            return self._reject(malformed, bar.symbol, bar.ts)
        series = self.series_for(("b", bar.venue, bar.symbol, bar.timeframe), bar.symbol)
        if _bar_seen(series, bar.ts, seconds):
            reason = f"{bar.timeframe} bar at {bar.ts.isoformat()} already seen"
            return self._reject((QualityRule.DUPLICATE, reason), bar.symbol, bar.ts)
        if bar.ts < series.last_ts:
            return self._out_of_order(series, None, bar.symbol, bar.ts)
        findings = self._bar_gap(series, bar, seconds)
        if bar.vwap is not None and not bar.low <= bar.vwap <= bar.high:
            findings = findings or []
            reason = f"vwap {bar.vwap:g} outside [{bar.low:g}, {bar.high:g}]"
            finding = self._finding(QualityRule.OHLC, Verdict.FLAG, reason, bar.symbol, bar.ts)
            findings.append(finding)
        findings = self._price_checks(series, bar.close, bar.volume, bar.symbol, bar.ts, findings)
        return ACCEPTED if findings is None else self._result(findings)

    def _bar_gap(self, series: _Series, bar: Bar, seconds: int) -> list[Finding] | None:
        """Flag missing bars between the previous bar and this one."""
        if series.last_ts == _MIN_TS:
            return None
        missing = int((bar.ts - series.last_ts).total_seconds()) // seconds - 1
        if missing <= series.t.bar_gap_tolerance:
            return None
        reason = f"{missing} {bar.timeframe} bar(s) missing after {series.last_ts.isoformat()}"
        return [self._finding(QualityRule.GAP, Verdict.FLAG, reason, bar.symbol, bar.ts)]

    # -- quotes, books, sentiment -----------------------------------------------------------

    def _validate_quote(self, quote: Quote) -> ValidationResult:
        """Validate top of book: positive prices, sizes, not crossed, ordered, no spike."""
        problem = _malformed_quote(quote)
        if problem is not None:
            return self._reject(problem, quote.symbol, quote.ts)
        series = self.series_for(("q", quote.venue, quote.symbol), quote.symbol)
        if quote.ts < series.last_ts:
            return self._out_of_order(series, None, quote.symbol, quote.ts)
        mid = quote.mid
        spike = series.spike(mid)
        findings = None
        if spike is not None:
            findings = self._spike_findings(series, spike, mid, quote.symbol, quote.ts, None)
            if spike[0] is Verdict.QUARANTINE:
                return self._result(findings)
        series.last_price = mid
        series.last_ts = quote.ts
        return ACCEPTED if findings is None else self._result(findings)

    def _validate_book(self, book: BookSnapshot) -> ValidationResult:
        """Validate a book snapshot: sorted positive levels, not crossed, sequence, order."""
        problem = _malformed_book(book)
        if problem is not None:
            return self._reject(problem, book.symbol, book.ts)
        series = self.series_for(("o", book.venue, book.symbol), book.symbol)
        return self._ordered_stream(series, book.sequence, book.symbol, book.ts)

    def _validate_delta(self, delta: BookDelta) -> ValidationResult:
        """Validate a book delta: known sides, positive prices, sizes, sequence, order."""
        for side, price, size in delta.changes:
            if side not in ("buy", "sell") or not 0.0 < price < _INF or not 0.0 <= size < _INF:
                reason = f"bad change ({side!r}, {price!r}, {size!r})"
                return self._reject((QualityRule.BAD_VALUE, reason), delta.symbol, delta.ts)
        series = self.series_for(("o", delta.venue, delta.symbol), delta.symbol)
        return self._ordered_stream(series, delta.sequence, delta.symbol, delta.ts)

    def _validate_sentiment(self, reading: SentimentReading) -> ValidationResult:
        """Validate a sentiment reading: score in [-1, 1], confidence in [0, 1], order."""
        if not (-1.0 <= reading.score <= 1.0 and 0.0 <= reading.confidence <= 1.0):
            reason = f"score {reading.score!r} / confidence {reading.confidence!r} out of range"
            return self._reject((QualityRule.BAD_VALUE, reason), reading.symbol, reading.ts)
        series = self.series_for(("s", reading.source, reading.symbol), reading.symbol)
        return self._ordered_stream(series, None, reading.symbol, reading.ts)

    def series_for(self, key: tuple[object, ...], symbol: str) -> _Series:
        """Return (creating if needed) the reference state of one stream."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.thresholds_for(symbol))
        return series

    def _ordered_stream(
        self, series: _Series, seq: int | None, symbol: str, ts: datetime
    ) -> ValidationResult:
        """Apply the sequence and timestamp-order checks shared by non-priced streams."""
        findings = None
        if seq is not None and series.t.check_sequence:
            findings = self._sequence(series, seq, symbol, ts)
            if findings and findings[-1].rule in _STOP_RULES:
                return self._result(findings)
        if ts < series.last_ts:
            return self._out_of_order(series, findings, symbol, ts)
        series.last_ts = ts
        return ACCEPTED if findings is None else self._result(findings)

    # -- results -----------------------------------------------------------------------------

    def _finding(
        self, rule: QualityRule, verdict: Verdict, reason: str, symbol: str, ts: datetime | None
    ) -> Finding:
        """Build a finding and count it per rule (cheap metrics for the monitoring app)."""
        self.rule_counts[rule.value] = self.rule_counts.get(rule.value, 0) + 1
        return Finding(rule, verdict, reason, symbol, ts)

    def _reject(
        self, problem: tuple[QualityRule, str], symbol: str, ts: datetime | None
    ) -> ValidationResult:
        """Return a quarantine result for one problem."""
        finding = self._finding(problem[0], Verdict.QUARANTINE, problem[1], symbol, ts)
        return ValidationResult(Verdict.QUARANTINE, (finding,))

    @staticmethod
    def _result(findings: list[Finding]) -> ValidationResult:
        """Combine findings into a result whose verdict is the most severe one."""
        verdict = max((f.verdict for f in findings), key=_SEVERITY.__getitem__)
        return ValidationResult(verdict, tuple(findings))


def _numbered(key: object) -> tuple[str, int] | None:
    """Split an id like "12345" or "sim-12345" into its prefix and number (None otherwise).

    Only the canonical spelling counts ("007" is not 7), so distinct ids never share a number.
    """
    if type(key) is not str:
        return None
    head = key.rstrip(_DIGITS)
    digits = key[len(head) :]
    if not digits or len(digits) > 18 or (digits[0] == "0" and len(digits) > 1):
        return None
    return head, int(digits)  # below _NUMBER_LIMIT


def _bar_seen(series: _Series, ts: datetime, seconds: int) -> bool:
    """Check and remember a bar time: on its timeframe's grid as a bar number, else as is."""
    micros = (ts - _EPOCH) // _MICROSECOND
    number, off_grid = divmod(micros, seconds * 1_000_000)
    if off_grid:
        return series._seen_other(ts)
    return series.seen_number(number)


def _bad_number(value: float) -> bool:
    """Return True for NaN, infinities and non-positive values."""
    return not 0.0 < value < _INF


def _malformed_trade(trade: Trade) -> tuple[QualityRule, str]:
    """Explain why a trade failed the cheap malformed-field test."""
    if trade.ts.tzinfo is None:
        return QualityRule.BAD_TIMESTAMP, "naive timestamp (no timezone)"
    if _bad_number(trade.price):
        return QualityRule.BAD_PRICE, f"price {trade.price!r} is not a positive finite number"
    return QualityRule.BAD_SIZE, f"size {trade.size!r} is not a positive finite number"


def _malformed_bar(bar: Bar) -> tuple[QualityRule, str] | None:
    """Return why a bar is impossible, or None when its fields are consistent."""
    if bar.ts.tzinfo is None:
        return QualityRule.BAD_TIMESTAMP, "naive timestamp (no timezone)"
    o, h, low, c = bar.open, bar.high, bar.low, bar.close
    if _bad_number(o) or _bad_number(h) or _bad_number(low) or _bad_number(c):
        return QualityRule.BAD_PRICE, f"non-positive or non-finite price in OHLC {o}/{h}/{low}/{c}"
    if not 0.0 <= bar.volume < _INF or bar.trade_count < 0:
        return QualityRule.BAD_SIZE, f"volume {bar.volume!r} / trade_count {bar.trade_count!r}"
    if h < max(o, c, low) or low > min(o, c, h):
        return QualityRule.OHLC, f"high/low inconsistent with OHLC {o}/{h}/{low}/{c}"
    return None


def _malformed_quote(quote: Quote) -> tuple[QualityRule, str] | None:
    """Return why a quote is impossible, or None."""
    if quote.ts.tzinfo is None:
        return QualityRule.BAD_TIMESTAMP, "naive timestamp (no timezone)"
    if _bad_number(quote.bid) or _bad_number(quote.ask):
        return QualityRule.BAD_PRICE, f"bid {quote.bid!r} / ask {quote.ask!r}"
    if not (0.0 <= quote.bid_size < _INF and 0.0 <= quote.ask_size < _INF):
        return QualityRule.BAD_SIZE, f"bid_size {quote.bid_size!r} / ask_size {quote.ask_size!r}"
    if quote.bid > quote.ask:
        return QualityRule.CROSSED, f"bid {quote.bid:g} above ask {quote.ask:g}"
    return None


def _malformed_book(book: BookSnapshot) -> tuple[QualityRule, str] | None:
    """Return why a book snapshot is impossible, or None."""
    if book.ts.tzinfo is None:
        return QualityRule.BAD_TIMESTAMP, "naive timestamp (no timezone)"
    for side, levels, descending in (("bid", book.bids, True), ("ask", book.asks, False)):
        prices = [p for p, _ in levels]
        if any(_bad_number(p) for p in prices) or any(not 0.0 <= s < _INF for _, s in levels):
            return QualityRule.BAD_VALUE, f"non-positive price or negative size on {side} side"
        if prices != sorted(prices, reverse=descending) or len(set(prices)) != len(prices):
            return QualityRule.BAD_VALUE, f"{side} levels not strictly sorted best first"
    if book.bids and book.asks and book.bids[0][0] >= book.asks[0][0]:
        return QualityRule.CROSSED, f"best bid {book.bids[0][0]:g} >= best ask {book.asks[0][0]:g}"
    return None


@dataclass(slots=True)
class QualityReport:
    """Summary of a batch validation: per-verdict counts and the non-clean findings."""

    accepted: int = 0
    flagged: int = 0
    quarantined: int = 0
    findings: list[Finding] = field(default_factory=list)


def validate_all(validator: QualityValidator, events: Iterable[MarketEvent]) -> QualityReport:
    """Validate a batch of events in order and summarise the outcome."""
    report = QualityReport()
    for event in events:
        result = validator.validate(event)
        if result is ACCEPTED or result.verdict is Verdict.ACCEPT:
            report.accepted += 1
            continue
        if result.verdict is Verdict.FLAG:
            report.flagged += 1
        else:
            report.quarantined += 1
        report.findings.extend(result.findings)
    return report
