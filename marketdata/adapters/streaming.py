"""A reconnecting WebSocket feed skeleton shared by the Polygon, Coinbase and Binance adapters.

Subclasses provide the handshake (``_on_open``) and the frame translation (``_handle_frame``); this
class owns the connection lifecycle: lazy connect, idle-timeout detection, reconnect with
exponential back-off and jitter, de-duplication of replays, counters and receive timestamps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import aclosing
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from marketdata.adapters.base import (
    ExponentialBackoff,
    FeedError,
    FeedEvent,
    FeedStats,
    FeedUnavailable,
    FrameHook,
    Malformed,
    SeenKeys,
    raw_text,
)

logger = logging.getLogger(__name__)


class FeedDisconnected(FeedError):
    """Raise to drop the current connection and reconnect (idle timeout, unexpected handshake)."""


# Transient failures: reconnect with back-off. Anything else (FeedAuthError, FeedProtocolError,
# bugs) propagates to the caller, so a bad key or config never turns into a reconnect storm.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionClosed,
    InvalidHandshake,
    OSError,
    TimeoutError,
    FeedDisconnected,
)


# Failed connects in a row, with no message ever received, before the feed gives up.
MAX_CONNECT_FAILURES = 5


class WebSocketFeed:
    """Run one venue WebSocket session after another, yielding normalised events."""

    venue = "ws"

    def __init__(
        self,
        *,
        url: str,
        idle_timeout: float = 30.0,
        backoff: ExponentialBackoff | None = None,
        on_frame: FrameHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_timeout: float = 10.0,
        dedupe_size: int = 10_000,
        max_size: int | None = 2**22,
        max_connect_failures: int = MAX_CONNECT_FAILURES,
    ):
        if max_connect_failures < 1:
            raise ValueError("max_connect_failures must be >= 1")
        self.url = url
        self.stats = FeedStats()
        self.last_received_at: float | None = None
        self._idle_timeout = idle_timeout
        self._backoff = backoff or ExponentialBackoff()
        self._on_frame = on_frame
        self._clock = clock
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._max_connect_failures = max_connect_failures
        self._seen = SeenKeys(dedupe_size)
        self._ws: ClientConnection | None = None
        self._closed = False
        self._closed_event = asyncio.Event()

    async def events(self) -> AsyncIterator[FeedEvent]:
        """Yield events, reconnecting on transient failures until ``close()`` is called.

        Raise FeedUnavailable after ``max_connect_failures`` failures in a row while no message
        has ever arrived: a venue that was never reachable is a configuration or network fault
        to report, not a reason to retry forever. Once a message has arrived, it reconnects
        with back-off for as long as it runs.
        """
        failures = 0
        while not self._closed:
            try:
                async with aclosing(self._session()) as session:
                    async for event in session:
                        yield event
            except RETRYABLE_ERRORS as exc:
                if self._closed:
                    return
                failures += 1
                if self.stats.frames == 0 and failures >= self._max_connect_failures:
                    raise FeedUnavailable(
                        f"{self.venue}: no connection to {self.url} after {failures} attempts "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
                self.stats.reconnects += 1
                logger.warning("%s feed lost (%s: %s); reconnecting", self.venue, type(exc), exc)
                await self._pause()

    async def close(self) -> None:
        """Stop the feed: the event iterator ends after the current connection closes."""
        self._closed = True
        self._closed_event.set()
        if self._ws is not None:
            await self._ws.close()

    async def _pause(self) -> None:
        """Back off before reconnecting, cut short by ``close()`` so shutdown never waits."""
        backoff = asyncio.ensure_future(self._backoff.wait())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            await asyncio.wait({backoff, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            backoff.cancel()
            closed.cancel()
        error = backoff.exception() if backoff.done() and not backoff.cancelled() else None
        if error is not None:
            raise error  # BackoffExhausted: the retry budget is spent

    async def _session(self) -> AsyncIterator[FeedEvent]:
        """Connect, handshake, then translate frames until the connection fails."""
        ws = await connect(
            self._connect_url(), open_timeout=self._open_timeout, max_size=self._max_size
        )
        self._ws = ws
        self.stats.connects += 1
        try:
            if self._closed:
                return
            await self._on_open(ws)
            while True:
                raw = await self._receive(ws)
                events = await self._translate_frame(ws, raw)
                if self._on_frame is not None:
                    self._on_frame(self.last_received_at or 0.0, events)
                for event in events:
                    if not isinstance(event, Malformed):
                        # Only real data proves the session healthy; acks alone could loop.
                        self._backoff.reset()
                    yield event
        finally:
            self._ws = None
            await ws.close()

    async def _translate_frame(self, ws: ClientConnection, raw: str | bytes) -> list[FeedEvent]:
        """Translate a frame; quarantine it when the adapter fails on it in an unforeseen way.

        Adapters turn every known kind of bad input into Malformed events; this is the net under
        them, so that one hostile frame (say, one that trips a RecursionError or a parser bug)
        costs one quarantined frame, logged with its traceback, never the feed. Venue verdicts
        (FeedError) and connection failures still propagate.
        """
        try:
            return await self._handle_frame(ws, raw)
        except (FeedError, *RETRYABLE_ERRORS):
            raise
        except Exception as exc:
            logger.exception("%s: frame could not be translated; quarantined", self.venue)
            # The adapter counted the message as received before it failed on it.
            return [self._quarantine(raw, f"untranslatable frame: {type(exc).__name__}: {exc}")]

    async def _receive(self, ws: ClientConnection) -> str | bytes:
        """Return the next frame, raising FeedDisconnected after ``idle_timeout`` of silence."""
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=self._idle_timeout)
        except TimeoutError as exc:
            raise FeedDisconnected(f"no message for {self._idle_timeout}s") from exc
        self.stats.frames += 1
        self.last_received_at = self._clock()
        return raw

    def _connect_url(self) -> str:
        """Return the URL to connect to (subclasses may add stream names)."""
        return self.url

    async def _on_open(self, ws: ClientConnection) -> None:
        """Run the venue handshake (auth, subscribe) on a fresh connection."""

    async def _handle_frame(self, ws: ClientConnection, raw: str | bytes) -> list[FeedEvent]:
        """Translate one frame into events (subclasses override)."""
        raise NotImplementedError

    # --- outcome accounting shared by subclasses: one call per received message ---

    def _accept(self, event: FeedEvent, key: Hashable | None) -> FeedEvent | None:
        """Count a translated message and return it, or None when ``key`` was already seen."""
        if key is not None and not self._seen.add(key):
            self.stats.duplicates += 1
            return None
        self.stats.parsed += 1
        return event

    def _quarantine(self, raw: Any, reason: str) -> Malformed:
        """Count a malformed message and wrap it for the caller."""
        self.stats.malformed += 1
        logger.debug("%s malformed message (%s): %.200s", self.venue, reason, raw_text(raw))
        return Malformed(raw=raw_text(raw), reason=reason, source=self.venue)

    def _control(self) -> None:
        """Count a control message (status, ack, heartbeat)."""
        self.stats.control += 1
