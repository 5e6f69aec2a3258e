"""``manage.py backfill``: sources, resume after failure and SIGKILL, claims, rate limits, gaps."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from marketdata.adapters.base import FeedProtocolError
from marketdata.backfill import (
    BackfillError,
    JobBusy,
    JobLost,
    SimulatedPages,
    TokenBucket,
    backfill_execute,
    backfill_job_claim,
    backfill_job_get_or_create,
    backfill_job_lock,
    gaps_from_stamps,
    limiter_for,
    runner_id,
)
from marketdata.engine.simulator import SimulatedMarket
from marketdata.models import BackfillJob, Bar, DataQualityEvent
from tests.factories import SymbolFactory
from tests.fakes.binance import FakeBinanceRest, kline_rows
from tests.fakes.polygon_rest import FakePolygonRest, aggregate_rows
from tests.fakes.threaded import served
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(60)

JAN1 = datetime(2024, 1, 1, tzinfo=UTC)
JAN1_MS = int(JAN1.timestamp() * 1000)
MINUTE = timedelta(minutes=1)
SIM = "--source sim --start 2024-01-01"


def backfill(args: str, *extra: str) -> str:
    """Run the command in-process with space-separated ``args``; return its stdout."""
    out = io.StringIO()
    call_command(
        "backfill", *args.split(), *extra, "--no-progress", stdout=out, stderr=io.StringIO()
    )
    return out.getvalue()


def bar_times(symbol: str = "BTC-USD", timeframe: str = "1m") -> list[datetime]:
    rows = Bar.objects.filter(symbol__name=symbol, timeframe=timeframe).order_by("ts")
    return list(rows.values_list("ts", flat=True))


def minutes(start: datetime, count: int) -> list[datetime]:
    return [start + n * MINUTE for n in range(count)]


def state(job: BackfillJob, *fields: str) -> tuple:
    job.refresh_from_db()
    return tuple(getattr(job, f) for f in fields)


# -- rate limiting -----------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_spaces_requests_at_the_rate():
    clock = FakeTime()
    bucket = TokenBucket(rate=2.0, capacity=1.0, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.5, 0.5, 0.5, 0.5])
    clock.now += 10.0  # idle time refills only up to the capacity: no burst beyond it
    assert [bucket.acquire(), bucket.acquire()] == pytest.approx([0.0, 0.5])


@hsettings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 1000.0),
    capacity=st.integers(1, 5),
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=40),
)
def test_token_bucket_never_exceeds_rate_plus_burst(rate, capacity, gaps):
    clock = FakeTime()
    bucket = TokenBucket(rate=rate, capacity=capacity, clock=clock, sleep=clock.sleep)
    taken = []
    for gap in gaps:
        clock.now += gap
        bucket.acquire()
        taken.append(clock.now)
    # In any window of length w at most capacity + w * rate tokens can be taken.
    for i in range(len(taken)):
        for j in range(i, len(taken)):
            assert j - i + 1 <= capacity + (taken[j] - taken[i]) * rate + 1e-6


def test_default_rates_per_source():
    assert limiter_for("polygon", None).rate == pytest.approx(5 / 60)
    assert limiter_for("sim", None) is None and limiter_for("polygon", 0) is None
    assert limiter_for("sim", 600).rate == pytest.approx(10.0)


# -- gap maths ----------------------------------------------------------------------------------


def test_gaps_cover_the_missing_windows_exactly():
    present = [JAN1 + n * MINUTE for n in (1, 2, 5, 6, 9)]
    report = gaps_from_stamps(present, timeframe="1m", start=JAN1, end=JAN1 + 10 * MINUTE)
    assert (report.expected, report.stored, report.missing) == (10, 5, 5)
    assert [(g.start, g.end, g.missing) for g in report.ranges] == [
        (JAN1, JAN1 + MINUTE, 1),
        (JAN1 + 3 * MINUTE, JAN1 + 5 * MINUTE, 2),
        (JAN1 + 7 * MINUTE, JAN1 + 9 * MINUTE, 2),
    ]
    assert report.ranges[1].as_dict() == {
        "start": "2024-01-01T00:03:00+00:00",
        "end": "2024-01-01T00:05:00+00:00",
        "missing": 2,
    }


def test_gaps_use_windows_starting_inside_an_unaligned_range():
    start = JAN1 + timedelta(seconds=30)  # the first window starting at or after it is 00:01
    end = JAN1 + timedelta(minutes=3, seconds=1)
    report = gaps_from_stamps([JAN1 + MINUTE], timeframe="1m", start=start, end=end)
    assert report.expected == 3  # 00:01, 00:02, 00:03
    assert [(g.start, g.missing) for g in report.ranges] == [(JAN1 + 2 * MINUTE, 2)]


@hsettings(max_examples=200, deadline=None)
@given(present=st.sets(st.integers(0, 299)), timeframe=st.sampled_from(["1s", "1m", "1h"]))
def test_gap_ranges_are_exactly_the_complement(present, timeframe):
    step = {"1s": timedelta(seconds=1), "1m": MINUTE, "1h": timedelta(hours=1)}[timeframe]
    stamps = [JAN1 + i * step for i in sorted(present)]
    report = gaps_from_stamps(stamps, timeframe=timeframe, start=JAN1, end=JAN1 + 300 * step)
    missing = set()
    for gap in report.ranges:
        first = (gap.start - JAN1) // step
        assert gap.missing == (gap.end - gap.start) // step > 0
        missing |= set(range(first, first + gap.missing))
    assert missing == set(range(300)) - present
    assert report.stored + report.missing == report.expected == 300


# -- sim ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sim_backfill_stores_every_window_with_the_simulated_prices():
    out = backfill(f"{SIM} --symbols ETH-USD --end 2024-01-01T06:00 --page-size 100")
    expected = SimulatedMarket(seed=42).history_bars("ETH-USD", "1m", JAN1, JAN1 + 360 * MINUTE)
    rows = Bar.objects.filter(symbol__name="ETH-USD", timeframe="1m").order_by("ts")
    assert list(rows.values_list("ts", flat=True)) == minutes(JAN1, 360)
    assert list(rows.values_list("close", flat=True)) == expected["close"].tolist()
    job = BackfillJob.objects.get()
    fields = ("status", "cursor", "rows_written", "pages", "gaps")
    assert state(job, *fields) == ("completed", JAN1 + 360 * MINUTE, 360, 4, [])
    assert f"job {job.pk}: new backfill sim ETH-USD 1m 2024-01-01 00:00 .. 2024-01-01 06:00" in out
    assert "360 of 360 1m windows stored" in out and "gap report: no missing 1m bars" in out


class FailingAfter:
    """A page source that fails after ``pages`` pages, like a venue going away."""

    def __init__(self, inner: SimulatedPages, pages: int, on_page=None) -> None:
        self.inner = inner
        self.fail_at = pages
        self.on_page = on_page
        self.truncated = None
        self.malformed = inner.malformed

    def pages(self, start: datetime, end: datetime) -> Iterator[list]:
        for i, page in enumerate(self.inner.pages(start, end)):
            if self.on_page is not None:
                self.on_page(i)
            if i == self.fail_at:
                raise FeedProtocolError("venue went away")
            yield page

    def close(self) -> None:
        self.inner.close()


@pytest.mark.django_db
def test_a_failed_job_is_resumed_from_its_cursor_by_the_next_run():
    symbol = SymbolFactory(name="BTC-USD")
    end = JAN1 + 300 * MINUTE
    job, resumed = backfill_job_get_or_create(
        source="sim", symbol=symbol, timeframe="1m", start=JAN1, end=end
    )
    assert not resumed
    source = FailingAfter(SimulatedPages("BTC-USD", "1m", page_size=60), pages=2)
    with pytest.raises(BackfillError, match="failed at 2024-01-01T02:00:00.*venue went away"):
        backfill_execute(job, source)
    fields = ("status", "cursor", "rows_written", "pages")
    assert state(job, *fields) == ("failed", JAN1 + 120 * MINUTE, 120, 2)
    assert "FeedProtocolError: venue went away" in job.error
    assert bar_times() == minutes(JAN1, 120)  # the cursor is exactly the first missing window

    out = backfill(f"{SIM} --symbols BTC-USD --end 2024-01-01T05:00 --page-size 60")
    assert f"job {job.pk}: resuming sim BTC-USD 1m" in out and "at 2024-01-01 02:00:00" in out
    assert "180 bars written in 3 pages" in out
    assert state(job, *fields, "error") == ("completed", end, 300, 5, "")
    assert bar_times() == minutes(JAN1, 300)
    assert BackfillJob.objects.count() == 1


@pytest.mark.django_db
def test_a_completed_range_starts_a_new_job():
    args = f"{SIM} --symbols SOL-USD --end 2024-01-01T01:00"
    backfill(args)
    out = backfill(args)
    assert "new backfill" in out and BackfillJob.objects.count() == 2
    assert Bar.objects.count() == 60  # upserted again, never duplicated


# -- claims -------------------------------------------------------------------------------------


def pending_job(**fields) -> BackfillJob:
    symbol = SymbolFactory(name="BTC-USD")
    job, _ = backfill_job_get_or_create(
        source="sim", symbol=symbol, timeframe="1m", start=JAN1, end=JAN1 + 60 * MINUTE
    )
    if fields:
        BackfillJob.objects.filter(pk=job.pk).update(**fields)
    return job


@pytest.mark.django_db
def test_a_job_whose_lock_is_held_is_refused_and_left_alone():
    job = pending_job(status="running", claimed_by="elsewhere:1:x", heartbeat_at=timezone.now())
    lock = backfill_job_lock(job.pk)
    assert lock.acquire()  # another runner, alive: it holds the job's lock
    try:
        with pytest.raises(JobBusy, match=f"job {job.pk} is being run by another process"):
            backfill_execute(job, SimulatedPages("BTC-USD", "1m", page_size=20))
    finally:
        lock.release()
    assert state(job, "status", "claimed_by", "rows_written") == ("running", "elsewhere:1:x", 0)
    assert bar_times() == []


@pytest.mark.django_db
def test_a_running_job_whose_lock_is_free_is_taken_over_at_once():
    # Its runner died (SIGKILL, host crash) seconds ago: no heartbeat age to wait for.
    job = pending_job(status="running", claimed_by="elsewhere:1:x", heartbeat_at=timezone.now())
    result = backfill_execute(job, SimulatedPages("BTC-USD", "1m", page_size=20))
    assert result.job.status == "completed" and bar_times() == minutes(JAN1, 60)
    assert state(job, "claimed_by")[0] != "elsewhere:1:x"


@pytest.mark.django_db
def test_a_claim_needs_the_jobs_lock():
    job = pending_job()
    with pytest.raises(JobBusy, match="without holding its lock"):
        backfill_job_claim(job_id=job.pk, worker=runner_id(), lock=backfill_job_lock(job.pk))
    assert state(job, "status") == ("pending",)


@pytest.mark.django_db
def test_a_completed_job_is_not_claimed_again():
    job = pending_job(status="completed")
    lock = backfill_job_lock(job.pk)
    assert lock.acquire()
    try:
        with pytest.raises(BackfillError, match="is completed"):
            backfill_job_claim(job_id=job.pk, worker=runner_id(), lock=lock)
    finally:
        lock.release()


@pytest.mark.django_db
def test_a_runner_that_lost_its_job_rolls_back_the_page_and_stops():
    job = pending_job()

    def steal(page_index: int) -> None:
        if page_index == 1:  # another runner takes over while page 1 is being fetched
            BackfillJob.objects.filter(pk=job.pk).update(claimed_by="thief:1:x")

    source = FailingAfter(SimulatedPages("BTC-USD", "1m", page_size=20), pages=99, on_page=steal)
    with pytest.raises(JobLost, match="taken over"):
        backfill_execute(job, source)
    assert bar_times() == minutes(JAN1, 20)
    fields = ("cursor", "rows_written", "claimed_by", "status")
    assert state(job, *fields) == (JAN1 + 20 * MINUTE, 20, "thief:1:x", "running")


# -- polygon ------------------------------------------------------------------------------------


def polygon(server, extra: str) -> str:
    return backfill(
        f"--source polygon --symbols BTC-USD --start 2024-01-01 --url {server.url} {extra}"
    )


@pytest.mark.django_db
def test_polygon_pages_through_next_url_retries_a_429_and_reports_provider_gaps():
    rows = [
        r for n, r in enumerate(aggregate_rows(300, start_ms=JAN1_MS)) if n not in {50, 51, 52, 200}
    ]
    fake = FakePolygonRest(rows, page_size=100, rate_limited=1)
    with served(fake) as server:
        out = polygon(server, "--end 2024-01-01T05:00 --api-key test-key --rate 0")
    assert len(fake.requests) == 4  # the 429, then three pages of 100
    assert all(
        p.startswith("/v2/aggs/ticker/X:BTCUSD/range/1/minute/") for _, p, _ in fake.requests
    )
    stored = bar_times()
    assert len(stored) == 296 and stored == sorted(set(stored))
    job = BackfillJob.objects.get()
    assert state(job, "status", "pages", "rows_written") == ("completed", 3, 296)
    assert job.gaps == [
        {"start": "2024-01-01T00:50:00+00:00", "end": "2024-01-01T00:53:00+00:00", "missing": 3},
        {"start": "2024-01-01T03:20:00+00:00", "end": "2024-01-01T03:21:00+00:00", "missing": 1},
    ]
    assert "gap report: 4 missing 1m bars (1.33 %) in 2 ranges" in out
    assert "Polygon omits windows without trades" in out
    assert "2024-01-01 00:50:00 .. 2024-01-01 00:53:00 UTC: 3 missing" in out
    bar = Bar.objects.get(ts=JAN1)
    ohlc = (bar.open, bar.high, bar.low, bar.close, bar.vwap, bar.trade_count)
    assert ohlc == (100.0, 102.0, 99.0, 101.0, 100.5, 5)


@pytest.mark.django_db
def test_polygon_requests_are_rate_limited():
    fake = FakePolygonRest(aggregate_rows(30, start_ms=JAN1_MS), page_size=10)
    began = time.monotonic()
    with served(fake) as server:
        polygon(server, "--end 2024-01-01T00:30 --api-key test-key --rate 600")
    # Three requests at 10 a second: the 2nd and 3rd each wait ~0.1 s for a token.
    assert len(fake.requests) == 3 and len(bar_times()) == 30
    assert time.monotonic() - began >= 0.19


@pytest.mark.django_db
def test_polygon_auth_failure_fails_the_job_with_a_clear_error():
    with served(FakePolygonRest(aggregate_rows(5, start_ms=JAN1_MS))) as server:
        with pytest.raises(CommandError, match="polygon rejected the API key"):
            polygon(server, "--end 2024-01-02 --api-key wrong --rate 0")
    job = BackfillJob.objects.get()
    assert job.status == "failed" and "FeedAuthError" in job.error
    assert Bar.objects.count() == 0


@pytest.mark.django_db
def test_polygon_without_an_api_key_is_refused(settings):
    settings.POLYGON_API_KEY = ""
    with pytest.raises(CommandError, match="POLYGON_API_KEY"):
        backfill("--source polygon --symbols BTC-USD --start 2024-01-01 --end 2024-01-02")
    assert BackfillJob.objects.count() == 0


# -- ccxt ---------------------------------------------------------------------------------------


def binance_exchange_info() -> dict:
    """A minimal spot ``/api/v3/exchangeInfo`` for BTCUSDT, as ccxt's load_markets reads it."""
    filters = [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1e6", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
    ]
    market = {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": filters,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }
    return {"timezone": "UTC", "serverTime": JAN1_MS, "rateLimits": [], "symbols": [market]}


class FakeBinanceWithMarkets(FakeBinanceRest):
    """The fake klines venue plus the exchangeInfo that ccxt loads markets from."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(binance_exchange_info())


@pytest.mark.django_db
def test_ccxt_binance_pages_by_since_through_the_real_ccxt_client():
    fake = FakeBinanceWithMarkets(
        [r for n, r in enumerate(kline_rows(90, start_ms=JAN1_MS)) if n != 40]
    )
    with served(fake) as server:
        out = backfill(
            "--source ccxt:binance --symbols BTC-USD --start 2024-01-01 --end 2024-01-01T01:30 "
            f"--url {server.url}/api/v3 --page-size 25 --rate 0"
        )
    klines = [path for _, path, _ in fake.requests if path.startswith("/api/v3/klines")]
    assert len(klines) == 4 and all("symbol=BTCUSDT" in p for p in klines)
    assert bar_times() == [t for n, t in enumerate(minutes(JAN1, 90)) if n != 40]
    job = BackfillJob.objects.get()
    assert state(job, "status", "rows_written") == ("completed", 89)
    assert job.gaps == [
        {"start": "2024-01-01T00:40:00+00:00", "end": "2024-01-01T00:41:00+00:00", "missing": 1}
    ]
    assert "gap report: 1 missing 1m bars" in out


# -- csv ----------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple]) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{ts.isoformat()},{o},{h},{low},{c},{v}" for ts, o, h, low, c, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.django_db
def test_csv_import_quarantines_impossible_bars_and_reports_them_as_gaps(tmp_path):
    rows = [(JAN1 + n * MINUTE, 10.0, 11.0, 9.0, 10.5, 1.0) for n in range(10) if n != 3]
    rows[6] = (rows[6][0], 10.0, 9.5, 9.0, 10.5, 1.0)  # 00:07: high below close, impossible
    path = write_csv(tmp_path / "bars.csv", rows)
    out = backfill(
        f"--source csv --file {path} --symbols AVAX-USD --start 2024-01-01 "
        "--end 2024-01-01T00:10 --page-size 4"
    )
    assert bar_times("AVAX-USD") == [JAN1 + n * MINUTE for n in range(10) if n not in (3, 7)]
    event = DataQualityEvent.objects.get()
    assert (event.rule, event.verdict, event.source) == ("ohlc_inconsistent", "quarantine", "csv")
    assert event.event_ts == JAN1 + 7 * MINUTE and event.symbol.name == "AVAX-USD"
    assert event.payload["high"] == 9.5
    assert "1 quarantined" in out and "gap report: 2 missing 1m bars" in out
    assert [g["missing"] for g in BackfillJob.objects.get().gaps] == [1, 1]


@pytest.mark.django_db
def test_csv_that_cannot_be_read_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00,abc,1,1,1,1\n")
    with pytest.raises(CommandError, match="column 'open' has non-numeric"):
        backfill(
            f"--source csv --file {path} --symbols BTC-USD --start 2024-01-01 --end 2024-01-02"
        )
    assert BackfillJob.objects.count() == 0


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--source nasdaq", "invalid choice: 'nasdaq'"),
        ("--source sim --end 2023-12-31", "must be after --start"),
        ("--source sim --end 2024-01-01", "must be after --start"),
        ("--source sim --start 2024-13-01", "'2024-13-01' is not a date"),
        ("--source sim --end tomorrow", "'tomorrow' is not a date"),
        ("--source csv", "--source csv needs --file"),
        ("--source csv --file /nonexistent/bars.csv", "no such file"),
        ("--source sim --file x.csv", "--file only applies to --source csv"),
        ("--source sim --symbols DOGE-USD", "'DOGE-USD' is not one of them"),
        ("--source polygon --api-key k --symbols BTCUSD", "'BTCUSD' is not BASE-QUOTE"),
        ("--source sim --rate -1", "--rate must be >= 0"),
        ("--source sim --timeframe 2m", "invalid choice: '2m'"),
        ("--source polygon --api-key k --async", "--api-key is not sent through the task queue"),
    ],
)
def test_bad_input_is_a_command_error(args, message):
    defaults = {"--symbols": "BTC-USD", "--start": "2024-01-01", "--end": "2024-01-02"}
    extra = [x for flag, value in defaults.items() if flag not in args for x in (flag, value)]
    with pytest.raises(CommandError, match=message):
        backfill(args, *extra)
    assert BackfillJob.objects.count() == 0


# -- django-q -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_async_flag_queues_the_job_as_a_django_q_task():
    from django_q.models import Task

    out = backfill(f"{SIM} --symbols MATIC-USD --end 2024-01-01T02:00 --async")
    job = BackfillJob.objects.get()
    task = Task.objects.get()  # the test settings run django-q2 tasks inline (sync)
    assert f"job {job.pk}: queued as django-q task {task.id}" in out
    assert f"task {task.id} succeeded" in out
    assert task.func == "marketdata.tasks.backfill_task" and task.args[0] == job.pk
    assert task.result["status"] == "completed" and task.result["stored_bars"] == 120
    assert job.status == "completed" and len(bar_times("MATIC-USD")) == 120


@pytest.mark.django_db
def test_backfill_task_runs_a_job_by_id():
    from marketdata.tasks import backfill_task

    job = pending_job()
    summary = backfill_task(job.pk, {"page_size": 25, "seed": 42})
    assert summary["status"] == "completed" and summary["pages"] == 3
    assert summary["missing_bars"] == 0 and summary["rows_written"] == 60


# -- SIGKILL and resume -------------------------------------------------------------------------


def subprocess_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return env | {"RRR_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}


def query(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


def job_row(db: Path) -> tuple | None:
    rows = query(db, "SELECT id, status, cursor, rows_written, pages FROM marketdata_backfilljob")
    return rows[0] if rows else None


def test_sigterm_then_sigkill_then_rerun_resumes_with_no_duplicates_and_no_gaps(tmp_path):
    env = subprocess_env(tmp_path)
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    migrate = [*manage, "migrate", "--noinput"]
    subprocess.run(migrate, env=env, check=True, capture_output=True, timeout=120)
    command = [*manage, "backfill", *f"{SIM} --symbols BTC-USD --end 2024-01-02".split()]
    command += ["--page-size", "60", "--no-progress"]
    db = tmp_path / "db" / "trading.db"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}

    def run_until(pages: int, sig: signal.Signals) -> tuple[int, str]:
        # 10 pages a second: the 24 pages take ~2.4 s, so the signal lands mid-way.
        proc = subprocess.Popen([*command, "--rate", "600"], env=env, **pipes)
        try:
            wait_for(lambda: (row := job_row(db)) is not None and row[4] >= pages)
        finally:
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=10)
        return proc.returncode, stderr

    # SIGTERM: the runner hands the job back (pending) and exits non-zero, saying how to resume.
    returncode, stderr = run_until(2, signal.SIGTERM)
    job_id, status, cursor, rows_written, pages = job_row(db)
    assert returncode == 1 and status == "pending" and rows_written == 60 * pages
    assert f"interrupted: job {job_id} stopped at {cursor} UTC" in stderr

    # SIGKILL: no cleanup at all; the job stays "running", claimed by a dead process.
    run_until(pages + 3, signal.SIGKILL)
    job_id, status, cursor, rows_written, pages = job_row(db)
    assert status == "running" and 5 <= pages < 24 and rows_written == 60 * pages
    # The cursor moved with the rows: exactly the bars before it are stored.
    assert query(db, "SELECT COUNT(*), MAX(ts) FROM marketdata_bar") == [
        (rows_written, str(datetime.fromisoformat(cursor) - MINUTE))
    ]

    second = subprocess.run([*command, "--rate", "0"], env=env, **pipes, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"job {job_id}: resuming" in second.stdout
    assert f"{1440 - rows_written} bars written in {24 - pages} pages" in second.stdout
    assert "gap report: no missing 1m bars" in second.stdout
    assert job_row(db) == (job_id, "completed", "2024-01-02 00:00:00", 1440, 24)
    rows = query(db, "SELECT ts, close FROM marketdata_bar ORDER BY ts")
    assert len(rows) == len({ts for ts, _ in rows}) == 1440
    assert [datetime.fromisoformat(ts).replace(tzinfo=UTC) for ts, _ in rows] == minutes(JAN1, 1440)
    expected = SimulatedMarket(seed=42).history_bars("BTC-USD", "1m", JAN1, JAN1 + 1440 * MINUTE)
    assert [close for _, close in rows] == expected["close"].tolist()
