"""Soak: a scripted paper run at 50 symbols on PostgreSQL and Redis with the API and WebSockets.

    python bench/soak.py                 # 5 minutes (default)
    python bench/soak.py --minutes 60    # the full run

One real ``runtrader --paper --serve`` (``bench/soak_engine.py``: the simulated market at
``--speed``, 1s bars, ``sma_cross`` on every symbol) on a PostgreSQL database and Redis (channel
layer, cache), while this process polls ``/api/v1/portfolio`` with a JWT and keeps
``--clients`` WebSocket clients on ``/ws/v1/stream`` (portfolio, orders, fills and a market
channel each). Every ``--sample`` seconds it records the engine's memory (RSS) and its own; at the
end it prints the memory series and its slope after the first minute and over the second half
(MB per minute; flat is ~0: a run of 20 minutes or more fails above ``FLAT_MB_PER_MIN`` over its
second half, once the engine's bounded caches - bars kept for amends (600 s of market time),
each symbol's close history - have filled; the quality checks' duplicate memory is a fixed ring
allocated with a stream's first event), the rows written per table, the
books reconciled (orders = fills, cash and positions = a replay of the fills) and every error
seen (HTTP status other than 200, WebSocket closes other than a documented 4429 reconnect,
protocol errors, a seq gap on an account channel, the engine's exit code). Exits non-zero if
anything is wrong.

Needs PostgreSQL (``--pg-url``, default ``$SOAK_DATABASE_URL`` or a ``rrr_soak`` database on
127.0.0.1) and Redis (``--redis-url``, default ``$SOAK_REDIS_URL`` or db 12 on 127.0.0.1).
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak_engine import soak_symbols  # noqa: E402

FLAT_MB_PER_MIN = 0.5  # the most the engine's RSS may grow over a long run's second half
JUDGE_FLAT_MINUTES = 20.0  # shorter runs are still filling bounded caches: memory not judged
NOTICE_LAGS: list[float] = []  # ms from an order/fill notice's publication to a client's read


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between RSS samples")
    parser.add_argument(
        "--fraction",
        default="0.015",
        help="sma_cross's equity fraction per symbol: 50 x 0.015 = 75%% gross, under the default"
        " 100%% gross limit, so the account trades all run instead of being refused after its"
        " first ten positions (the default 0.1 was: thousands of risk events, no orders after"
        " the first minutes)",
    )
    parser.add_argument("--window", type=float, default=300.0, help="seconds per orders window")
    parser.add_argument(
        "--malloc-arena-max",
        type=int,
        default=2,
        help="MALLOC_ARENA_MAX for the engine, as deploy/ sets it (0: glibc's default, 8 a core)",
    )
    parser.add_argument(
        "--django-debug",
        action="store_true",
        help="run the engine with DEBUG on (development's default): Django then keeps the last"
        " 9,000 queries' SQL per database connection, reset only by a request: the logs of"
        " the engine's own threads (market-data and trading writers) grow through a long run"
        " (~0.4 MB/min in a traced soak) and show as a memory slope; deploy/ runs with DEBUG"
        " off, and so does the soak unless asked",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rrr_soak"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/12")
    )
    return parser.parse_args()


def prepare(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    """Create and migrate the database from scratch; return the engine's environment."""
    import psycopg
    from psycopg import sql

    name = args.pg_url.rsplit("/", 1)[1]
    admin = args.pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:  # every soak starts on empty tables
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {k: v for k, v in os.environ.items() if k not in {"SQLITE_PATH", "PYTEST_VERSION"}}
    env.update(
        DATABASE_URL=args.pg_url,
        REDIS_URL=args.redis_url,
        RRR_DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
        DEBUG="true" if args.django_debug else "false",  # as deployed (DJANGO_ENV=production)
        Q_SYNC="false",
        JWT_ACCESS_MINUTES="120",
        SOAK_GC_LOG=str(data_dir / "gc.txt"),  # the engine's collector pauses (soak_engine)
        # A random walk at 10x speed loses more than a day's 5% (or 20% from the peak) in an
        # hour of wall time: the default limits then refuse (or halt) every entry and the soak
        # stops trading. The soak is about the engine carrying on, so it trades on.
        MAX_DAILY_LOSS_PCT="0.9",
        MAX_DRAWDOWN_PCT="0.95",
    )
    env.pop("MALLOC_ARENA_MAX", None)
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
    manage = [sys.executable, "manage.py"]
    for step in (["migrate", "-v0"], ["bootstrap", "--no-admin"]):
        subprocess.run([*manage, *step], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "rrr_site.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("soak", password="soak-password-1234")
    return env


class Errors(Counter):
    """What went wrong, counted by kind (the soak passes only with none)."""


async def poll_api(
    base: str,
    stop: float,
    errors: Errors,
    stats: Counter,
    timings: dict[str, list[float]],
    path: str = "/api/v1/portfolio",
) -> None:
    """Poll ``path`` (with a JWT) every second until ``stop`` (monotonic); time each reply.

    ``/health`` (public, no database) polled beside the portfolio tells a slow event loop
    (both slow) from a slow database or view thread (only the portfolio slow).
    """
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        auth = await client.post(
            "/api/v1/auth/token", json={"username": "soak", "password": "soak-password-1234"}
        )
        if auth.status_code != 200:
            errors[f"api token {auth.status_code}"] += 1
            return
        headers = {"Authorization": f"Bearer {auth.json()['access']}"}
        name = path.rsplit("/", 1)[-1]
        while time.monotonic() < stop:
            began = time.monotonic()
            try:
                reply = await client.get(path, headers=headers)
            except httpx.TransportError as exc:
                errors[f"api {name} {type(exc).__name__}"] += 1
                continue
            timings.setdefault(name, []).append(1000 * (time.monotonic() - began))
            if reply.status_code not in (200, 503 if name == "health" else 200):
                errors[f"api {name} {reply.status_code}"] += 1
            await asyncio.sleep(1.0)


def latency_lines(timings: dict[str, list[float]]) -> list[str]:
    """Return one line per polled path: count, p50, p99, max (ms) and polls over 5 s."""
    import numpy as np

    lines = []
    for name, ms in sorted(timings.items()):
        p50, p99 = np.percentile(ms, [50, 99])
        slow = sum(m > 5000 for m in ms)
        lines.append(
            f"api {name}: {len(ms)} polls, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
            f"max {max(ms):.0f} ms, over 5 s: {slow}"
        )
    return lines


TOO_SLOW = 4429  # docs/websocket.md: reconnect and resubscribe, snapshots bring it up to date


async def ws_client(
    url: str, channels: list[str], stop: float, errors: Errors, stats: Counter, began: float
) -> None:
    """Hold one stream connection until ``stop``; count messages, seq gaps and errors.

    Behaves as docs/websocket.md tells a client to: closed with 4429 (too slow), it reconnects
    and resubscribes, and the snapshots bring it up to date. Such a reconnect is counted apart
    (with when it happened); any other close, a refusal or an error message is an error.
    """
    import websockets

    while time.monotonic() < stop:
        try:
            code = await ws_session(websockets, url, channels, stop, errors, stats)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            errors[f"ws {type(exc).__name__}: {exc}"[:120]] += 1
            return
        if code != TOO_SLOW:
            return
        minute = int((time.monotonic() - began) // 60)
        stats[f"ws reconnects after 4429 (too slow), minute {minute}"] += 1
        await asyncio.sleep(1.0)


async def ws_session(
    websockets, url: str, channels: list[str], stop: float, errors: Errors, stats: Counter
) -> int | None:
    """Run one connection until ``stop``; return the server's close code if it closed first."""
    last: dict[str, int] = {}
    async with websockets.connect(url, max_size=2**22, open_timeout=30) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "channels": channels}))
        while time.monotonic() < stop:
            try:
                left = max(0.1, stop - time.monotonic())
                text = await asyncio.wait_for(ws.recv(), timeout=left)
            except TimeoutError:
                return None
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code != TOO_SLOW:
                    errors[f"ws closed {code}: {closed}"[:120]] += 1
                return code
            message = json.loads(text)
            stats["ws messages"] += 1
            kind = message.get("type")
            if kind in ("order", "fill") and stats["ws messages"] % 10 == 0:
                published = datetime.fromisoformat(message["ts"]).timestamp()
                NOTICE_LAGS.append(1000 * (time.time() - published))
            if kind == "error":
                errors[f"ws error: {message.get('error')}"] += 1
            elif kind == "ack" and message.get("refused"):
                errors[f"ws refused: {message['refused']}"] += 1
            elif "seq" in message:
                channel, seq = message["channel"], message["seq"]
                if kind == "snapshot":
                    stats["ws snapshots"] += 1
                elif channel in last and seq != last[channel] + 1:
                    if channel.startswith("market."):
                        stats["ws seq gaps (told drops of conflated market data)"] += 1
                    else:
                        errors[f"ws seq gap on {channel}"] += 1
                last[channel] = seq
    return None


def rss_mb(pid: int, children: bool = True) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        tree = [proc, *proc.children(recursive=True)] if children else [proc]
        return sum(p.memory_info().rss for p in tree) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


def trading_counts() -> tuple[int, int, int]:
    """Return the orders, fills and risk events stored so far."""
    from django.db import connection

    from risk.models import RiskEvent
    from trading.models import Fill, Order

    try:
        return Order.objects.count(), Fill.objects.count(), RiskEvent.objects.count()
    finally:
        connection.close()  # a worker thread's connection: not left open


async def sample_memory(
    engine: subprocess.Popen,
    stop: float,
    every: float,
    series: list[tuple[float, float, float]],
    trading: list[tuple[float, int, int, int]],
) -> None:
    """Every ``every`` s: the engine's and this process's RSS, and the rows of trading so far."""
    began = time.monotonic()
    while time.monotonic() < stop and engine.poll() is None:
        own = rss_mb(os.getpid(), children=False)  # the engine is this process's child
        series.append((time.monotonic() - began, rss_mb(engine.pid), own))
        trading.append((time.monotonic() - began, *await asyncio.to_thread(trading_counts)))
        await asyncio.sleep(every)


def window_lines(
    trading: list[tuple[float, int, int, int]], final: tuple[int, int, int], window: float
) -> list[str]:
    """Return orders, fills and risk events per ``window`` s of the run (steady: none empty).

    A window ends at the last sample inside it; the last one at the rows stored after the run.
    """
    lines, last, start, edge = [], (0, 0, 0), 0.0, window
    ends = [s for s in trading if s[0] > 0]
    while ends:
        inside = [s for s in ends if s[0] <= edge] or ends[:1]
        if inside[-1] is ends[-1]:
            break
        t, *counts = inside[-1]
        lines.append(_window_line(start, t, counts, last))
        last, start, ends = tuple(counts), t, ends[len(inside) :]
        edge = max(edge + window, (t // window + 1) * window)
    end = trading[-1][0] if trading else 0.0
    lines.append(_window_line(start, end, final, last) + " (to the end of the run)")
    return lines


def _window_line(start: float, end: float, counts, last) -> str:
    orders, fills, risk = (c - b for c, b in zip(counts, last, strict=True))
    return f"{start:5.0f}-{end:5.0f} s: {orders} orders, {fills} fills, {risk} risk events"


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    import numpy as np

    if len(points) < 3:
        return float("nan")
    x, y = np.array(points).T
    return float(np.polyfit(x / 60.0, y, 1)[0])


async def soak(args: argparse.Namespace, engine: subprocess.Popen, port: int) -> tuple:
    errors, stats, series, timings, trading = Errors(), Counter(), [], {}, []
    stop = time.monotonic() + args.minutes * 60
    began = time.monotonic()
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):  # the server answers once runtrader is up (health is public)
        if engine.poll() is not None:
            errors[f"engine exited early ({engine.returncode})"] += 1
            return errors, stats, series, timings, trading
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            await asyncio.sleep(0.5)
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for _ in range(120):  # the engine warms 50 symbols up before it serves quickly
            try:
                if (await client.get("/health")).status_code in (200, 503):
                    break
            except httpx.TransportError:
                await asyncio.sleep(1)
        token = (
            await client.post(
                "/api/v1/auth/token", json={"username": "soak", "password": "soak-password-1234"}
            )
        ).json()["access"]
    names = soak_symbols(args.symbols)
    url = f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}"
    tasks = [
        poll_api(base, stop, errors, stats, timings),
        poll_api(base, stop, errors, stats, timings, "/health"),
        sample_memory(engine, stop, args.sample, series, trading),
    ]
    for i in range(args.clients):
        channels = ["portfolio", "orders", "fills", f"market.{names[i % len(names)]}"]
        tasks.append(ws_client(url, channels, stop, errors, stats, began))
    await asyncio.gather(*tasks)
    return errors, stats, series, timings, trading


def reconcile() -> dict[str, object]:
    """Return rows written per table and whether every account's books agree."""
    from django.apps import apps

    from tests.trading.books import assert_books_agree
    from trading.models import Account

    rows = {
        m._meta.label: m.objects.count()
        for m in apps.get_models()
        if m._meta.app_label in {"marketdata", "trading", "risk", "monitoring"}
    }
    problems = []
    for account in Account.objects.all():
        try:
            assert_books_agree(account)
        except AssertionError as exc:
            problems.append(f"{account.name}: {exc}")
    return {
        "rows": {k: v for k, v in sorted(rows.items()) if v},
        "books": problems,
        "engine": engine_counters(),
    }


def engine_counters() -> dict[str, object]:
    """Return the engine's last heartbeat counters about its broadcasts and events."""
    from monitoring.models import SystemEvent

    beat = SystemEvent.objects.filter(component="runtrader", kind="heartbeat").first()
    context = beat.context if beat is not None else {}
    keys = ("events", "bars", "broadcasts_dropped", "broadcasts_conflated")
    return {k: context[k] for k in keys if k in context}


def slow_closes(log: Path) -> Counter:
    """Count the server's 4429 closes in the engine's log by reason (numbers left out)."""
    import re

    marker = "closing a slow WebSocket client (4429): "
    reasons: Counter = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if marker in line:
            detail = json.loads(line).get("message", "") if line.startswith("{") else line
            reason = detail.split(marker, 1)[-1]
            reasons[re.sub(r"\d+", "N", reason)] += 1
    return reasons


def report(args, engine_rc, errors, stats, series, timings, checked, wall) -> bool:
    import numpy as np

    arenas = args.malloc_arena_max or "glibc default"
    print(
        f"soak: {args.symbols} symbols, {args.clients} WebSocket clients, API polled each second,"
        f" speed {args.speed:g}, {wall / 60:.1f} min on PostgreSQL + Redis,"
        f" engine MALLOC_ARENA_MAX={arenas}, DEBUG {'on' if args.django_debug else 'off'}"
    )
    print(f"{'t (s)':>7} {'engine RSS (MB)':>16} {'bench RSS (MB)':>15}")
    for t, engine, own in series:
        print(f"{t:7.0f} {engine:16.1f} {own:15.1f}")
    after = [(t, e) for t, e, _ in series if t >= 60]
    slope = slope_per_minute(after)
    if series:
        first, last = series[0][1], series[-1][1]
        print(
            f"engine RSS: {first:.1f} MB at start, {last:.1f} MB at end "
            f"(ratio {last / first:.3f}); slope after the first minute {slope:+.3f} MB/min"
        )
    flat = memory_verdict(series, args.minutes)
    for line in latency_lines(timings):
        print(line)
    if NOTICE_LAGS:
        p50, p99 = np.percentile(NOTICE_LAGS, [50, 99])
        print(
            f"ws order/fill notices, published -> read by a client: {len(NOTICE_LAGS)} sampled,"
            f" p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(NOTICE_LAGS):.0f} ms"
        )
    for what, n in sorted(stats.items()):
        print(f"{what}: {n}")
    for table, n in checked["rows"].items():
        print(f"rows {table}: {n}")
    print(f"orders per {args.window:g} s window (trading all run: no window without orders):")
    for line in checked["windows"]:
        print(f"  {line}")
    for what, n in checked["engine"].items():
        print(f"engine {what}: {n}")
    for reason, n in checked["slow"].items():
        print(f"server closed a client with 4429 ({reason}): {n}")
    for line in checked["gc"]:  # each pause stopped the engine's loop (and the web server's)
        print(f"engine garbage collector {line}")
    print(
        "books reconciled (orders = fills, cash and positions = a replay of the fills): "
        + ("yes" if not checked["books"] else "NO " + "; ".join(checked["books"]))
    )
    if engine_rc != 0:
        errors[f"engine exit code {engine_rc}"] += 1
    print(f"errors: {sum(errors.values())}" + "".join(f"\n  {n} x {k}" for k, n in errors.items()))
    orders = checked["rows"].get("trading.Order", 0)
    return not errors and not checked["books"] and orders > 0 and flat is not False


def memory_verdict(series: list[tuple[float, float, float]], minutes: float) -> bool | None:
    """Print the engine's RSS slope over the second half; say if it is flat (None: not judged)."""
    if len(series) < 3:
        return None
    half = [(t, e) for t, e, _ in series if t >= series[-1][0] / 2]
    late = slope_per_minute(half)
    print(f"engine RSS slope over the second half: {late:+.3f} MB/min")
    if minutes < JUDGE_FLAT_MINUTES:
        print(f"memory flat: not judged (under {JUDGE_FLAT_MINUTES:g} minutes)")
        return None
    flat = late <= FLAT_MB_PER_MIN
    print(f"memory flat (second-half slope <= {FLAT_MB_PER_MIN} MB/min): {'yes' if flat else 'NO'}")
    return flat


def main() -> int:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="rrr-soak-"))
    env = prepare(args, data_dir)
    port = free_port()
    began = time.monotonic()
    engine = subprocess.Popen(
        [
            sys.executable,
            "bench/soak_engine.py",
            str(args.symbols),
            "--paper",
            "--timeframe",
            "1s",
            "--speed",
            f"{args.speed:g}",
            "--strategy",
            "sma_cross",
            "--param",
            f"fraction={args.fraction}",
            "--no-worker",
            "--serve",
            f"127.0.0.1:{port}",
            "--duration",
            f"{args.minutes * 60 + 20:g}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(data_dir / "engine.log", "w"),
    )
    try:
        errors, stats, series, timings, trading = asyncio.run(soak(args, engine, port))
        engine_rc = engine.wait(timeout=180)
    finally:
        if engine.poll() is None:
            engine.kill()
    if engine_rc != 0:
        print((data_dir / "engine.log").read_text()[-3000:], file=sys.stderr)
    checked = reconcile()
    checked["slow"] = slow_closes(data_dir / "engine.log")
    gc_log = data_dir / "gc.txt"
    checked["gc"] = gc_log.read_text().splitlines() if gc_log.exists() else []
    rows = checked["rows"]
    final = tuple(rows.get(k, 0) for k in ("trading.Order", "trading.Fill", "risk.RiskEvent"))
    checked["windows"] = window_lines(trading, final, args.window)
    idle = sum(": 0 orders," in line for line in checked["windows"])
    if idle:  # the account stopped trading, or its orders stopped being stored
        errors["windows without orders"] += idle
    ok = report(args, engine_rc, errors, stats, series, timings, checked, time.monotonic() - began)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
