"""Resumable, rate-limited historical bar downloads (``manage.py backfill`` and its task).

A ``BackfillJob`` row is the unit of work. Its ``cursor`` is the first window start not yet
stored and moves in the same transaction as each page's bars, so a run killed at any point (even
SIGKILL) resumes where it stopped: no duplicates, no holes. A runner owns a job by holding its
lock (``rrr_site.locks``: a PostgreSQL advisory lock, a file lock on SQLite), which the database
or the operating system releases the moment the runner dies, so a rerun after SIGKILL starts at
once and a second runner of a live job is refused. Every page's write is also conditional on the
claim, so a runner that lost its job stops at its next page instead of writing on.

Pages are fetched synchronously: async adapters (Polygon REST, ccxt) are driven one page at a time
on a private event loop, so the ORM is only ever used while no event loop is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Protocol

import aiohttp
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from tqdm import tqdm

from marketdata.adapters.base import Malformed
from marketdata.choices import JobStatus
from marketdata.constants import BACKFILL_SOURCES
from marketdata.engine.constants import DEFAULT_SYMBOLS_BY_NAME
from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.events import TIMEFRAME_SECONDS, Bar
from marketdata.engine.planting import parse_plants
from marketdata.engine.quality import QualityRule, QualityValidator, Verdict
from marketdata.engine.sim_model import CointegratedPair
from marketdata.models import BackfillJob, Symbol
from marketdata.models import Bar as BarRow
from marketdata.pipeline import QualityRecord
from marketdata.storage import MarketDataStore
from rrr_site.locks import OwnerLock, owner_lock

logger = logging.getLogger(__name__)

# Requests per minute when no rate is given: Polygon's free tier allows 5. Other sources: none
# (local ones need no limit; for ccxt venues ccxt applies each venue's own, weighted per endpoint).
DEFAULT_RATE_PER_MINUTE: dict[str, float] = {"polygon": 5.0}
DEFAULT_PAGE_SIZE: dict[str, int] = {
    "polygon": 50_000,
    "ccxt:binance": 1_000,
    "ccxt:coinbase": 300,
    "ccxt:kraken": 720,
    "csv": 10_000,
    "tradingview": 10_000,
    "sim": 1_440,
}
# ccxt exchange id and the ``urls["api"]`` key that --url replaces.
CCXT_EXCHANGES: dict[str, tuple[str, str]] = {
    "ccxt:binance": ("binance", "public"),
    "ccxt:coinbase": ("coinbase", "rest"),
    "ccxt:kraken": ("kraken", "public"),
}
# Binance otherwise loads futures markets too: two more heavy requests we never use.
CCXT_CONFIG: dict[str, dict[str, Any]] = {
    "binance": {"options": {"fetchMarkets": {"types": ["spot"]}}},
}
RESUMABLE = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED)
MAX_GAP_RANGES = 1_000  # stored on the job; the totals always cover every range
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class BackfillError(Exception):
    """A backfill cannot start or failed; the message says why."""


class JobBusy(BackfillError):
    """Another live runner holds the job."""


class JobLost(BackfillError):
    """The job was taken over by another runner while this one was working on it."""


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """How to reach a backfill source; None means the source's default."""

    url: str | None = None
    api_key: str | None = None
    file: str | None = None
    page_size: int | None = None
    rate_per_minute: float | None = None  # 0 = unlimited
    seed: int = 42
    plant_pairs: tuple[str, ...] = ()  # sim: ``--plant-pair`` specs (marketdata.engine.planting)

    def task_kwargs(self) -> dict[str, Any]:
        """Return the options to send through the task queue (never the API key)."""
        return {k: v for k, v in asdict(self).items() if k != "api_key"}


# -- rate limiting --------------------------------------------------------------------------------


class TokenBucket:
    """Token-bucket limiter: ``rate`` tokens a second refill a bucket of ``capacity`` tokens."""

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()

    def _reserve(self) -> float:
        """Take a token and return 0, or return how long to wait for the next one."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        # The tolerance absorbs float rounding, which could otherwise leave a token forever
        # a hair short of 1 and wait in ever smaller sleeps.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; return the seconds waited."""
        waited = 0.0
        while (delay := self._reserve()) > 0:
            self._sleep(delay)
            waited += delay
        return waited

    async def acquire_async(self) -> float:
        """Take one token without blocking the event loop; return the seconds waited."""
        waited = 0.0
        while (delay := self._reserve()) > 0:
            await asyncio.sleep(delay)
            waited += delay
        return waited


def limiter_for(source: str, rate_per_minute: float | None) -> TokenBucket | None:
    """Return the request limiter of ``source`` (its default rate unless one is given)."""
    rate = DEFAULT_RATE_PER_MINUTE.get(source) if rate_per_minute is None else rate_per_minute
    if rate is None or rate == 0:
        return None
    if rate < 0:
        raise BackfillError(f"rate must be >= 0 pages a minute, got {rate}")
    # Capacity 1: even a restarted runner cannot burst above the provider's rate.
    return TokenBucket(rate / 60.0, capacity=1.0)


# -- page sources ---------------------------------------------------------------------------------


class PageSource(Protocol):
    """Historical bars of one symbol and timeframe, read page by page in time order."""

    # Why the last ``pages()`` stopped before the end (page cap, ...), else None.
    truncated: str | None
    # Rows the adapter could not translate since last drained; the runner quarantines them.
    malformed: list[Malformed]

    def pages(self, start: datetime, end: datetime) -> Iterator[list[Bar]]:
        """Yield pages of bars with ``start <= ts < end``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _LocalPages:
    """Shared parts of in-process sources: optional pacing, nothing to close."""

    def __init__(self, limiter: TokenBucket | None) -> None:
        self.limiter = limiter
        self.truncated: str | None = None
        self.malformed: list[Malformed] = []

    def _pace(self) -> None:
        if self.limiter is not None:
            self.limiter.acquire()

    def close(self) -> None:
        """Nothing to release."""


class SimulatedPages(_LocalPages):
    """Bars of the simulated market, generated a page at a time (deterministic for a seed)."""

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        *,
        seed: int = 42,
        page_size: int = 1_440,
        limiter: TokenBucket | None = None,
        cointegrated: Sequence[CointegratedPair] = (),
    ) -> None:
        from marketdata.engine.simulator import SimulatedMarket

        if symbol not in DEFAULT_SYMBOLS_BY_NAME:
            names = ", ".join(DEFAULT_SYMBOLS_BY_NAME)
            raise BackfillError(f"sim simulates {names}; {symbol!r} is not one of them")
        super().__init__(limiter)
        # The whole default market: a symbol's path must not depend on which ones are selected.
        # Planted pairs (``--plant-pair``) rewrite followers from their leaders.
        self.market = SimulatedMarket(seed=seed, cointegrated=cointegrated)
        self.symbol = symbol
        self.timeframe = timeframe
        self.page_span = timedelta(seconds=TIMEFRAME_SECONDS[timeframe] * page_size)

    def pages(self, start: datetime, end: datetime) -> Iterator[list[Bar]]:
        """Yield one page of generated bars per ``page_size`` windows."""
        page_start = start
        while page_start < end:
            self._pace()
            page_end = min(end, page_start + self.page_span)
            frame = self.market.history_bars(self.symbol, self.timeframe, page_start, page_end)
            yield [
                Bar(
                    self.symbol,
                    self.timeframe,
                    r.ts.to_pydatetime(),
                    r.open,
                    r.high,
                    r.low,
                    r.close,
                    r.volume,
                    r.vwap,
                    int(r.trade_count),
                    venue="sim",
                )
                for r in frame.itertuples(index=False)
            ]
            page_start = page_end


class FilePages(_LocalPages):
    """Bars of a CSV or Parquet file, read once and served in pages."""

    def __init__(
        self,
        path: str,
        symbol: str,
        timeframe: str,
        *,
        page_size: int = 10_000,
        limiter: TokenBucket | None = None,
        tradingview: bool = False,
    ) -> None:
        from marketdata.adapters.files import BarFileError, read_bars, read_tradingview_csv

        super().__init__(limiter)
        try:
            if tradingview:  # a TradingView chart export
                self.bars = read_tradingview_csv(path, symbol=symbol, timeframe=timeframe)
            else:
                self.bars = read_bars(path, symbol=symbol, timeframe=timeframe, venue="csv")
        except BarFileError as exc:
            raise BackfillError(str(exc)) from exc
        self.page_size = page_size

    def pages(self, start: datetime, end: datetime) -> Iterator[list[Bar]]:
        """Yield the file's bars inside the range, ``page_size`` at a time."""
        chosen = [b for b in self.bars if start <= b.ts < end]
        for i in range(0, len(chosen), self.page_size):
            self._pace()
            yield chosen[i : i + self.page_size]


class AsyncPages:
    """Drive an async page generator one page at a time on a private event loop."""

    def __init__(self) -> None:
        self.malformed: list[Malformed] = []
        self._loop = asyncio.new_event_loop()
        self._open: Callable[[datetime, datetime], AsyncIterator[list[Bar]]] | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._truncated: Callable[[], str | None] = lambda: None

    def bind(
        self,
        open_pages: Callable[[datetime, datetime], AsyncIterator[list[Bar]]],
        *,
        truncated: Callable[[], str | None],
        closers: Sequence[Callable[[], Awaitable[None]]],
    ) -> AsyncPages:
        """Set the adapter's page generator, its truncation flag and what to close."""
        self._open = open_pages
        self._truncated = truncated
        self._closers = list(closers)
        return self

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run ``awaitable`` on the private loop (to create loop-bound objects such as sessions)."""
        return self._loop.run_until_complete(_awaited(awaitable))

    @property
    def truncated(self) -> str | None:
        """Return why the adapter stopped early, if it did."""
        return self._truncated()

    def pages(self, start: datetime, end: datetime) -> Iterator[list[Bar]]:
        """Yield pages; the loop runs only while a page is being fetched."""
        if self._open is None:
            raise RuntimeError("AsyncPages.bind() was not called")
        agen = self._open(start, end)
        try:
            while True:
                try:
                    page = self.run(anext(agen))
                except StopAsyncIteration:
                    return
                yield page
        finally:
            try:
                self.run(agen.aclose())
            except RuntimeError as exc:
                # Interrupted mid-fetch (Ctrl-C): the generator is still suspended in its task;
                # close() tears the loop down instead. The interrupt itself keeps propagating.
                logger.debug("page generator not closed cleanly: %s", exc)

    def close(self) -> None:
        """Close the adapter's sessions and the loop."""
        if self._loop.is_closed():
            return
        try:
            for closer in self._closers:
                self.run(closer())
            self.run(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _limited_session(limiter: TokenBucket | None, timeout: float) -> aiohttp.ClientSession:
    """Return an HTTP session that takes a limiter token before every request (retries too)."""
    trace = aiohttp.TraceConfig()
    if limiter is not None:

        async def on_request_start(*_: object) -> None:
            await limiter.acquire_async()

        trace.on_request_start.append(on_request_start)
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), trace_configs=[trace]
    )


def _polygon_pages(
    symbol: str, timeframe: str, options: SourceOptions, limiter: TokenBucket | None
) -> AsyncPages:
    from marketdata.adapters.polygon_rest import TIMEFRAMES, PolygonRestClient

    spans = {tf: size for size, tf in TIMEFRAMES.items()}
    if timeframe not in spans:
        raise BackfillError(f"polygon has no {timeframe} aggregates; use one of {list(spans)}")
    key = options.api_key or settings.POLYGON_API_KEY
    if not key:
        raise BackfillError("polygon needs an API key: set POLYGON_API_KEY or pass --api-key")
    source = AsyncPages()
    session = source.run(_limited_session(limiter, timeout=30.0))
    client = PolygonRestClient(
        key,
        base_url=options.url or settings.POLYGON_REST_URL,
        session=session,
        limit=options.page_size or DEFAULT_PAGE_SIZE["polygon"],
        on_malformed=source.malformed.append,
    )
    multiplier, timespan = spans[timeframe]

    def open_pages(start: datetime, end: datetime) -> AsyncIterator[list[Bar]]:
        # Polygon's range includes its end; ours does not.
        last = end - timedelta(milliseconds=1)
        return client.aggregates(symbol, multiplier, timespan, start, last)

    return source.bind(
        open_pages, truncated=lambda: client.truncated, closers=(client.close, session.close)
    )


def _ccxt_pages(
    source: str, symbol: str, timeframe: str, options: SourceOptions, rate: float | None
) -> AsyncPages:
    import ccxt

    from marketdata.adapters.ccxt_ohlcv import CcxtOhlcvSource

    exchange_id, url_key = CCXT_EXCHANGES[source]
    timeframes = getattr(ccxt, exchange_id)().timeframes or {}
    if timeframe not in timeframes:
        raise BackfillError(f"{exchange_id} has no {timeframe} candles; use {list(timeframes)}")
    config = dict(CCXT_CONFIG.get(exchange_id, {}))
    if rate is not None:
        # ccxt's own throttle spaces every request (retries included) by rateLimit ms.
        config |= {"enableRateLimit": rate > 0, "rateLimit": 60_000 / rate if rate > 0 else 0}
    pages = AsyncPages()
    adapter = CcxtOhlcvSource(
        exchange_id,
        config=config,
        api_urls={url_key: options.url} if options.url else None,
        page_limit=options.page_size or DEFAULT_PAGE_SIZE[source],
        on_malformed=pages.malformed.append,
    )
    return pages.bind(
        lambda start, end: adapter.bars(symbol, timeframe, start, end),
        truncated=lambda: adapter.truncated,
        closers=(adapter.close,),
    )


def page_source_open(
    source: str, symbol: str, timeframe: str, options: SourceOptions | None = None
) -> PageSource:
    """Return the rate-limited page source for ``source``; raise BackfillError if unusable."""
    options = options or SourceOptions()
    if source not in BACKFILL_SOURCES:
        raise BackfillError(f"unknown source {source!r}; use one of {', '.join(BACKFILL_SOURCES)}")
    if timeframe not in TIMEFRAME_SECONDS:
        raise BackfillError(f"unknown timeframe {timeframe!r}; use {list(TIMEFRAME_SECONDS)}")
    if options.page_size is not None and options.page_size < 1:
        raise BackfillError(f"page size must be >= 1, got {options.page_size}")
    if options.rate_per_minute is not None and options.rate_per_minute < 0:
        raise BackfillError(f"rate must be >= 0 requests a minute, got {options.rate_per_minute}")
    page_size = options.page_size or DEFAULT_PAGE_SIZE[source]
    if source in CCXT_EXCHANGES:
        return _ccxt_pages(source, symbol, timeframe, options, options.rate_per_minute)
    limiter = limiter_for(source, options.rate_per_minute)
    if source == "polygon":
        return _polygon_pages(symbol, timeframe, options, limiter)
    if options.plant_pairs and source != "sim":
        raise BackfillError("--plant-pair plants structure in the simulated market: --source sim")
    if source == "sim":
        try:
            pairs, _ = parse_plants(options.plant_pairs)
            return SimulatedPages(
                symbol,
                timeframe,
                seed=options.seed,
                page_size=page_size,
                limiter=limiter,
                cointegrated=pairs,
            )
        except SimulationConfigError as exc:
            raise BackfillError(f"--plant-pair: {exc}") from None
    if not options.file:
        raise BackfillError(f"--source {source} needs --file PATH (a .csv or .parquet file)")
    return FilePages(
        options.file,
        symbol,
        timeframe,
        page_size=page_size,
        limiter=limiter,
        tradingview=source == "tradingview",
    )


# -- gaps -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GapRange:
    """Consecutive missing windows: starts in [start, end)."""

    start: datetime
    end: datetime
    missing: int

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form stored on ``BackfillJob.gaps``."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "missing": self.missing,
        }


@dataclass(frozen=True, slots=True)
class GapReport:
    """Windows expected in a range, how many are stored, and the missing ranges."""

    expected: int
    stored: int
    ranges: tuple[GapRange, ...]

    @property
    def missing(self) -> int:
        """Return the number of missing windows."""
        return sum(g.missing for g in self.ranges)


def _epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def _window_start(index: int, step_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=index * step_us)


def window_bounds(start: datetime, end: datetime, timeframe: str) -> tuple[int, int]:
    """Return the first and one-past-last window index whose start lies in [start, end)."""
    step = TIMEFRAME_SECONDS[timeframe] * 1_000_000
    return -(-_epoch_us(start) // step), -(-_epoch_us(end) // step)


def gaps_from_stamps(
    stamps: Iterable[datetime], *, timeframe: str, start: datetime, end: datetime
) -> GapReport:
    """Return the windows in [start, end) without a bar, from sorted bar timestamps."""
    step = TIMEFRAME_SECONDS[timeframe] * 1_000_000
    first, stop = window_bounds(start, end, timeframe)
    ranges: list[GapRange] = []
    expected, stored = first, 0
    for ts in stamps:
        index = _epoch_us(ts) // step  # a bar counts for the window it falls in
        stored += 1
        if index > expected:
            ranges.append(
                GapRange(
                    _window_start(expected, step), _window_start(index, step), index - expected
                )
            )
        expected = max(expected, index + 1)
    if expected < stop:
        ranges.append(
            GapRange(_window_start(expected, step), _window_start(stop, step), stop - expected)
        )
    return GapReport(expected=max(0, stop - first), stored=stored, ranges=tuple(ranges))


def bar_gaps(*, symbol_id: int, timeframe: str, start: datetime, end: datetime) -> GapReport:
    """Return the stored bars' gap report for [start, end): every window counts (24/7)."""
    stamps = (
        BarRow.objects.filter(symbol_id=symbol_id, timeframe=timeframe, ts__gte=start, ts__lt=end)
        .order_by("ts")
        .values_list("ts", flat=True)
        .iterator(chunk_size=20_000)
    )
    return gaps_from_stamps(stamps, timeframe=timeframe, start=start, end=end)


# -- jobs -----------------------------------------------------------------------------------------


def runner_id() -> str:
    """Return an id for this runner: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def backfill_job_get_or_create(
    *, source: str, symbol: Symbol, timeframe: str, start: datetime, end: datetime
) -> tuple[BackfillJob, bool]:
    """Return the unfinished job for this range (resumed=True) or a new pending one."""
    if end <= start:
        raise BackfillError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    with transaction.atomic():
        # Serialise job creation per symbol so two starting runners find the same job.
        Symbol.objects.select_for_update().filter(pk=symbol.pk).exists()
        job = (
            BackfillJob.objects.filter(
                source=source,
                symbol=symbol,
                timeframe=timeframe,
                start=start,
                end=end,
                status__in=RESUMABLE,
            )
            .order_by("created_at", "pk")
            .first()
        )
        if job is not None:
            return job, True
        job = BackfillJob.objects.create(
            source=source, symbol=symbol, timeframe=timeframe, start=start, end=end, cursor=start
        )
        return job, False


def backfill_job_lock(job_id: int) -> OwnerLock:
    """Return the ownership lock of backfill job ``job_id`` (not yet taken)."""
    return owner_lock(f"backfill-job:{job_id}")


def backfill_job_claim(
    *, job_id: int, worker: str, lock: OwnerLock, now: datetime | None = None
) -> BackfillJob:
    """Claim job ``job_id`` for ``worker``, who holds the job's ``lock``; raise if finished."""
    if not lock.held:
        raise JobBusy(f"backfill job {job_id}: claim without holding its lock")
    now = now or timezone.now()
    jobs = BackfillJob.objects.filter(pk=job_id)
    current = jobs.first()
    if current is None:
        raise BackfillError(f"backfill job {job_id} does not exist")
    if current.status not in RESUMABLE:
        raise BackfillError(f"backfill job {job_id} is {current.status}; nothing to resume")
    if current.status == JobStatus.RUNNING and current.claimed_by != worker:
        # We hold the lock, so whoever claimed it last is gone (killed, crashed host).
        logger.warning("backfill job %s: taking over from %s", job_id, current.claimed_by)
    claim = {"status": JobStatus.RUNNING, "claimed_by": worker, "heartbeat_at": now, "error": ""}
    if not jobs.filter(status__in=RESUMABLE).update(**claim):
        raise BackfillError(f"backfill job {job_id} finished meanwhile; nothing to resume")
    return jobs.select_related("symbol").get()


def backfill_job_release(*, job_id: int, worker: str, status: str, error: str = "") -> bool:
    """Set the status of a job this worker holds (pending, failed, ...); return True if held."""
    held = BackfillJob.objects.filter(pk=job_id, claimed_by=worker, status=JobStatus.RUNNING)
    return bool(held.update(status=status, error=error[:4000], heartbeat_at=timezone.now()))


# -- running --------------------------------------------------------------------------------------


@dataclass(slots=True)
class BackfillResult:
    """What a backfill run did (this run's counts), and the job's gap report."""

    job: BackfillJob
    resumed_from: datetime | None
    rows_written: int
    pages: int
    quarantined: int
    report: GapReport
    truncated: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe summary (the django-q task result)."""
        job, report = self.job, self.report
        return {
            "job_id": job.pk,
            "source": job.source,
            "symbol": job.symbol.name,
            "timeframe": job.timeframe,
            "status": job.status,
            "resumed_from": self.resumed_from.isoformat() if self.resumed_from else None,
            "rows_written": self.rows_written,
            "pages": self.pages,
            "quarantined": self.quarantined,
            "expected_bars": report.expected,
            "stored_bars": report.stored,
            "missing_bars": report.missing,
            "gap_ranges": len(report.ranges),
        }


@dataclass(slots=True)
class BackfillRunner:
    """Run one claimed job: fetch pages, screen, store each page with the cursor, report gaps."""

    job: BackfillJob
    source: PageSource
    worker: str
    store: MarketDataStore = field(default_factory=MarketDataStore)
    validator: QualityValidator = field(default_factory=QualityValidator)
    clock: Callable[[], datetime] = timezone.now
    progress: bool = False
    progress_file: IO[str] | None = None
    pages: int = 0
    rows_written: int = 0
    quarantined: int = 0

    @property
    def step(self) -> timedelta:
        """Return the bar width."""
        return timedelta(seconds=TIMEFRAME_SECONDS[self.job.timeframe])

    def run(self) -> BackfillResult:
        """Fetch from the cursor to the end; mark the job completed, failed or pending."""
        resumed_from = (
            self.job.cursor if self.job.cursor and self.job.cursor > self.job.start else None
        )
        try:
            with self._progress_bar() as bar:
                self._fetch(bar)
            report = self._finish()
        except KeyboardInterrupt:
            # Hand the job back at once so a rerun on any host need not wait for staleness.
            backfill_job_release(job_id=self.job.pk, worker=self.worker, status=JobStatus.PENDING)
            raise
        except JobLost:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            backfill_job_release(
                job_id=self.job.pk, worker=self.worker, status=JobStatus.FAILED, error=error
            )
            raise BackfillError(
                f"backfill job {self.job.pk} failed at {self._cursor().isoformat()}: {error}"
            ) from exc
        counts = (self.rows_written, self.pages, self.quarantined)
        return BackfillResult(self.job, resumed_from, *counts, report, self.source.truncated)

    def _cursor(self) -> datetime:
        return self.job.cursor or self.job.start

    def _windows_done(self) -> int:
        first, done = window_bounds(self.job.start, self._cursor(), self.job.timeframe)
        return done - first

    def _progress_bar(self) -> Any:
        first, stop = window_bounds(self.job.start, self.job.end, self.job.timeframe)
        return tqdm(
            total=stop - first,
            initial=self._windows_done(),
            unit="bar",
            unit_scale=True,
            desc=f"{self.job.source} {self.job.symbol.name} {self.job.timeframe}",
            disable=not self.progress,
            file=self.progress_file,
            dynamic_ncols=True,
        )

    def _fetch(self, bar: Any) -> None:
        """Store pages until the source is exhausted; re-ask after a truncated listing."""
        shown = self._windows_done()
        while self._cursor() < self.job.end:
            before = self._cursor()
            # Close the generator at once on errors: it may hold an HTTP response open.
            with contextlib.closing(self.source.pages(before, self.job.end)) as pages:
                for page in pages:
                    self._commit(page)
                    bar.update(self._windows_done() - shown)
                    shown = self._windows_done()
            if self.source.truncated is None:
                return
            if self._cursor() == before:
                raise BackfillError(f"source stopped without progress: {self.source.truncated}")
            logger.info("backfill job %s: %s; continuing", self.job.pk, self.source.truncated)

    def _screen(self, bars: Sequence[Bar], now: datetime) -> tuple[list[Bar], list[QualityRecord]]:
        """Validate bars: keep accepted and flagged ones, record findings except gaps."""
        keep: list[Bar] = []
        records: list[QualityRecord] = []
        for bar in bars:
            result = self.validator.validate(bar)
            for finding in result.findings:
                # Missing windows are what the gap report is for; one row per hole is noise.
                if finding.verdict is Verdict.ACCEPT or finding.rule is QualityRule.GAP:
                    continue
                records.append(
                    self._record(
                        str(finding.rule),
                        finding.verdict,
                        finding.reason,
                        now,
                        event_ts=bar.ts,
                        payload=_bar_payload(bar),
                    )
                )
            if result.verdict is Verdict.QUARANTINE:
                self.quarantined += 1
            else:
                keep.append(bar)
        return keep, records

    def _record(
        self, rule: str, verdict: str, reason: str, now: datetime, **extra
    ) -> QualityRecord:
        job = self.job
        return QualityRecord(now, job.source, job.symbol.name, rule, str(verdict), reason, **extra)

    def _malformed_records(self, now: datetime) -> list[QualityRecord]:
        records = [
            self._record(
                "malformed", Verdict.QUARANTINE, m.reason, now, payload={"raw": m.raw[:2000]}
            )
            for m in self.source.malformed
        ]
        self.source.malformed.clear()
        self.quarantined += len(records)
        return records

    def _commit(self, page: Sequence[Bar]) -> None:
        """Store a page and move the cursor past it in one transaction."""
        cursor, end = self._cursor(), self.job.end
        # After a resume a provider page may start before the cursor; those bars are stored.
        fresh = [b for b in page if cursor <= b.ts < end]
        now = self.clock()
        records = self._malformed_records(now)
        keep, findings = self._screen(fresh, now)
        new_cursor = max([cursor, *(b.ts + self.step for b in fresh)])
        with transaction.atomic(using=self.store.using):
            written = self.store.write([*keep, *records, *findings]).written.get("bars", 0)
            held = BackfillJob.objects.filter(
                pk=self.job.pk, claimed_by=self.worker, status=JobStatus.RUNNING
            ).update(
                cursor=new_cursor,
                rows_written=F("rows_written") + written,
                pages=F("pages") + 1,
                heartbeat_at=now,
            )
            if held != 1:
                raise JobLost(f"backfill job {self.job.pk} was taken over; page rolled back")
        self.job.cursor = new_cursor
        self.pages += 1
        self.rows_written += written

    def _finish(self) -> GapReport:
        """Compute the gap report and mark the job completed."""
        job = self.job
        report = bar_gaps(
            symbol_id=job.symbol_id, timeframe=job.timeframe, start=job.start, end=job.end
        )
        gaps = [g.as_dict() for g in report.ranges[:MAX_GAP_RANGES]]
        done = BackfillJob.objects.filter(
            pk=job.pk, claimed_by=self.worker, status=JobStatus.RUNNING
        ).update(status=JobStatus.COMPLETED, cursor=job.end, gaps=gaps, heartbeat_at=self.clock())
        if done != 1:
            raise JobLost(f"backfill job {job.pk} was taken over before it completed")
        job.cursor, job.status, job.gaps = job.end, JobStatus.COMPLETED, gaps
        return report


def _bar_payload(bar: Bar) -> dict[str, Any]:
    fields = ("symbol", "timeframe", "open", "high", "low", "close", "volume", "vwap")
    return {"ts": bar.ts.isoformat(), **{f: getattr(bar, f) for f in fields}}


def backfill_execute(
    job: BackfillJob,
    source: PageSource,
    *,
    worker: str | None = None,
    progress: bool = False,
    progress_file: IO[str] | None = None,
) -> BackfillResult:
    """Lock and claim ``job``, run it to completion with ``source`` (the caller closes it)."""
    worker = worker or runner_id()
    lock = backfill_job_lock(job.pk)
    if not lock.acquire():
        holder = lock.holder()
        by = BackfillJob.objects.filter(pk=job.pk).values_list("claimed_by", flat=True).first()
        raise JobBusy(
            f"backfill job {job.pk} is being run by another process ({holder or by or 'unknown'});"
            " wait for it to finish or stop it"
        )
    try:
        claimed = backfill_job_claim(job_id=job.pk, worker=worker, lock=lock)
        runner = BackfillRunner(
            job=claimed,
            source=source,
            worker=worker,
            progress=progress,
            progress_file=progress_file,
        )
        return runner.run()
    finally:
        lock.release()
