"""The feed contract shared by every market-data adapter, plus the pieces they all need.

A feed yields normalised ``marketdata.engine.events`` (Trade, Quote, Bar, BookSnapshot) and, for
frames it cannot translate, a :class:`Malformed` event: a bad frame must never kill a live feed, the
caller quarantines, counts and logs it instead.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from marketdata.engine.events import Bar, BookSnapshot, Quote, Trade

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Unix ms beyond year ~2286 is certainly a unit mistake (seconds/us/ns sent as ms).
MAX_EPOCH_MS = 10**13
# Symbol names are stored in Symbol.name (CharField(max_length=32)).
MAX_SYMBOL_LENGTH = 32
# Text kept of a payload for quarantine: enough to diagnose, never a whole hostile frame.
MAX_RAW_TEXT = 4_000


class FeedError(Exception):
    """Base class of every market-data adapter error."""


class FeedProtocolError(FeedError):
    """Raise when a venue breaks its protocol (HTTP error, bad handshake, retries used up)."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        # Keep the message readable; the full body stays on the exception.
        snippet = (body or "")[:500]
        detail = message if status is None else f"{message} (HTTP {status}): {snippet}".rstrip()
        super().__init__(detail)
        self.status = status
        self.body = body


class FeedAuthError(FeedError):
    """Raise when a venue rejects the credentials; fatal, retrying cannot help."""


class FeedUnavailable(FeedError):
    """Raise when a feed could not connect a bounded number of times and never got a message."""


class MalformedMessage(FeedError):
    """Raise when one wire message cannot be translated into an event."""

    def __init__(self, reason: str, raw: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True, slots=True)
class Malformed:
    """A wire message the adapter could not translate; quarantine it and keep going."""

    raw: str
    reason: str
    source: str


FeedEvent = Trade | Quote | Bar | BookSnapshot | Malformed
FrameHook = Callable[[float, list[FeedEvent]], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed; every received message ends in exactly one outcome bucket."""

    frames: int = 0
    received: int = 0
    parsed: int = 0
    malformed: int = 0
    duplicates: int = 0
    control: int = 0
    # Valid data deliberately not emitted (e.g. Binance klines that are not closed yet).
    filtered: int = 0
    # Data discarded because the state it applies to is unknown (update before snapshot, gap).
    dropped: int = 0
    connects: int = 0
    reconnects: int = 0
    resyncs: int = 0
    gaps: int = 0

    def accounted(self) -> int:
        """Return the number of received messages that reached an outcome bucket."""
        return (
            self.parsed
            + self.malformed
            + self.duplicates
            + self.control
            + self.filtered
            + self.dropped
        )


@runtime_checkable
class MarketDataFeed(Protocol):
    """A source of normalised market-data events (implemented by async generators)."""

    stats: FeedStats
    # time.monotonic() (or the injected clock) when the frame behind the latest event arrived.
    last_received_at: float | None

    def events(self) -> AsyncIterator[FeedEvent]:
        """Yield normalised events until closed; raise FeedAuthError/FeedProtocolError if fatal."""
        ...

    async def close(self) -> None:
        """Stop the feed and release its connection."""
        ...


async def with_receive_time(feed: MarketDataFeed) -> AsyncIterator[tuple[FeedEvent, float]]:
    """Yield ``(event, received_at)`` pairs, pairing each event with its frame's arrival time."""
    async for event in feed.events():
        # Events are yielded synchronously after their frame is read, so the attribute is exact.
        yield event, feed.last_received_at if feed.last_received_at is not None else math.nan


class BackoffExhausted(FeedProtocolError):
    """Raise when a reconnect/retry budget is spent."""


class ExponentialBackoff:
    """Exponential back-off with proportional jitter, injectable RNG and sleep."""

    def __init__(
        self,
        *,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ):
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter <= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.max_attempts = max_attempts
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.attempts = 0

    def delay(self, attempt: int) -> float:
        """Return the jittered delay for the zero-based ``attempt``, within [base*(1-j), base]."""
        # Cap the exponent so huge attempt counts cannot overflow the float maths.
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        # Jitter spreads reconnects of many clients so they do not hammer the venue in lockstep.
        return base * (1.0 - self.jitter * self._rng.random())

    async def wait(self) -> float:
        """Sleep before the next attempt and return the delay; raise BackoffExhausted when spent."""
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            raise BackoffExhausted(f"gave up after {self.attempts} retries")
        seconds = self.delay(self.attempts)
        self.attempts += 1
        await self._sleep(seconds)
        return seconds

    def reset(self) -> None:
        """Start again from the initial delay (after a healthy connection)."""
        self.attempts = 0


class SeenKeys:
    """Bounded LRU set of recently seen message keys, used to drop replays after a reconnect."""

    def __init__(self, capacity: int = 10_000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Record ``key``; return True when it is new, False when it was already seen."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


# --- wire-parsing helpers: total functions that raise MalformedMessage, never KeyError etc. ---


def raw_text(payload: Any) -> str:
    """Return a wire payload as bounded text for quarantine (never raises)."""
    if isinstance(payload, bytes):
        return payload[:MAX_RAW_TEXT].decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload[:MAX_RAW_TEXT]
    try:
        return json.dumps(payload, separators=(",", ":"), default=str)[:MAX_RAW_TEXT]
    except (TypeError, ValueError, RecursionError):
        # A payload nested too deep for json.dumps is also too deep for repr().
        return f"<unprintable {type(payload).__name__}>"


def parse_json(raw: str | bytes) -> Any:
    """Decode a JSON frame or raise MalformedMessage (also for nesting too deep to decode)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"invalid JSON: {exc}", raw_text(raw)) from exc
    except RecursionError as exc:
        # json's decoder recurses per nesting level: a frame of 200 KB of "[" must not escape.
        raise MalformedMessage("invalid JSON: nested too deeply", raw_text(raw)) from exc


def symbol_field(msg: Mapping[str, Any], key: str) -> str:
    """Return a symbol name: a non-empty printable string of at most MAX_SYMBOL_LENGTH."""
    value = require(msg, key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"field {key!r} is not a symbol: {value!r}")
    # NUL and other control characters cannot be stored (PostgreSQL refuses NUL in text).
    if len(value) > MAX_SYMBOL_LENGTH or not value.isprintable():
        raise MalformedMessage(f"field {key!r} is not a symbol: {value[:64]!r}")
    return value


def require(msg: Mapping[str, Any], key: str) -> Any:
    """Return ``msg[key]`` or raise MalformedMessage when it is absent or null."""
    value = msg.get(key)
    if value is None:
        raise MalformedMessage(f"missing field {key!r}")
    return value


def require_mapping(msg: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Return the object under ``key`` or raise MalformedMessage."""
    value = require(msg, key)
    if not isinstance(value, Mapping):
        raise MalformedMessage(f"field {key!r} is not an object")
    return value


def to_float(value: Any, key: str) -> float:
    """Convert a JSON number or numeric string to a finite float or raise MalformedMessage."""
    # bool is an int subclass; a true/false where a number belongs is a protocol error.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedMessage(f"field {key!r} is not numeric: {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError) as exc:  # OverflowError: an int beyond float range
        raise MalformedMessage(f"field {key!r} is not numeric: {value!r}") from exc
    if not math.isfinite(number):
        raise MalformedMessage(f"field {key!r} is not finite: {value!r}")
    return number


def price_field(msg: Mapping[str, Any], key: str) -> float:
    """Return a strictly positive price from ``msg[key]``."""
    return positive(to_float(require(msg, key), key), key)


def size_field(msg: Mapping[str, Any], key: str) -> float:
    """Return a non-negative size from ``msg[key]``."""
    return non_negative(to_float(require(msg, key), key), key)


def positive(value: float, key: str) -> float:
    """Return ``value`` when > 0, else raise MalformedMessage."""
    if value <= 0:
        raise MalformedMessage(f"field {key!r} must be > 0, got {value!r}")
    return value


def non_negative(value: float, key: str) -> float:
    """Return ``value`` when >= 0, else raise MalformedMessage."""
    if value < 0:
        raise MalformedMessage(f"field {key!r} must be >= 0, got {value!r}")
    return value


def int_field(msg: Mapping[str, Any], key: str) -> int:
    """Return an integer field (JSON int or integral string) or raise MalformedMessage."""
    value = require(msg, key)
    if isinstance(value, bool):
        raise MalformedMessage(f"field {key!r} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        try:
            return int(value)
        except ValueError:  # "²" is a digit to isdigit() but not to int(); so are 5,000 digits
            pass
    raise MalformedMessage(f"field {key!r} is not an integer: {value!r}")


def ms_to_utc(ms: int | float, key: str = "t") -> datetime:
    """Convert Unix milliseconds to an aware UTC datetime, exactly for integers."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms):
        raise MalformedMessage(f"field {key!r} is not a timestamp: {ms!r}")
    if not 0 < ms < MAX_EPOCH_MS:
        raise MalformedMessage(f"field {key!r} out of range for Unix ms: {ms!r}")
    return EPOCH + timedelta(milliseconds=ms)


def ms_field(msg: Mapping[str, Any], key: str) -> datetime:
    """Return ``msg[key]`` (Unix ms) as an aware UTC datetime."""
    return ms_to_utc(int_field(msg, key), key)


def iso_field(msg: Mapping[str, Any], key: str) -> datetime:
    """Return an ISO 8601 timestamp field as an aware UTC datetime."""
    value = require(msg, key)
    if not isinstance(value, str):
        raise MalformedMessage(f"field {key!r} is not an ISO timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedMessage(f"field {key!r} is not an ISO timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedMessage(f"field {key!r} has no timezone: {value!r}")
    return parsed.astimezone(UTC)


def to_utc_ms(moment: datetime) -> int:
    """Convert an aware datetime to Unix milliseconds; reject naive datetimes."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware UTC datetime")
    return (moment - EPOCH) // timedelta(milliseconds=1)
