"""Load the REST API at a fixed request rate under the production server; latency per endpoint.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rrr_bench_api \\
        .venv/bin/python bench/api_load.py --duration 60        # the figure (PostgreSQL)
    .venv/bin/python bench/api_load.py --sqlite --duration 60  # the embedded default
    .venv/bin/python bench/api_load.py --sqlite --server daphne --workers 1  # one process

The database named by DATABASE_URL is a scratch database: it is migrated and seeded with one
paper account holding ``--fills`` fills (COPY on PostgreSQL), ``--snapshots`` portfolio snapshots
and ``--predictions`` predictions (then ANALYZEd, as autovacuum would). uvicorn serves
``rrr_site.asgi`` on 127.0.0.1 with ``--workers`` processes as in production (docs/deploy.md,
deploy/systemd/rrr-web.service, DEBUG off; ``--server daphne`` for the single-process server:
it runs the sync views one at a time); an open-loop generator sends
``--rate`` requests/s round-robin over ``/api/portfolio``, ``/api/trades?limit=100`` and
``/api/performance/equity-curve?points=500`` with a JWT, and ``/health`` as the reference
measured in the same run. Latency counts from each request's scheduled start, so a stall shows.
The per-user throttle is raised for the run (one user sends every request). The machine's load
average (``os.getloadavg``) is printed before and after: on a shared host it moves the figures.
Then the CPU the server processes, PostgreSQL (every postgres process on the host) and the
generator spent per request over the run, and (``--cpu-requests``) each endpoint's server CPU
per request with the ASGI app called in this process, beside /health's: CPU time, which other
load on the host moves far less than latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENDPOINTS = [
    "/api/portfolio",
    "/api/trades?limit=100",
    "/api/performance/equity-curve?points=500",
]
REFERENCE = "/health"
PASSWORD = "bench-password-not-secret"


def _setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    import django

    django.setup()


def _load(table: str, columns: list[str], rows) -> None:
    """Insert rows: COPY on PostgreSQL, executemany on SQLite."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            batch = []
            for row in rows:
                batch.append([v.isoformat(" ") if isinstance(v, datetime) else v for v in row])
                if len(batch) == 20_000:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)


def seed(fills: int, snapshots: int, predictions: int) -> None:
    """Migrate, bootstrap and store the account's history."""
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from marketdata.models import Symbol
    from models_ml.models import MLModel, Prediction
    from tests.factories import UserFactory
    from trading.models import Account, Fill, Order, PortfolioSnapshot

    call_command("migrate", verbosity=0)
    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    account = Account.objects.get(name="paper")
    user = UserFactory(username="bench", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="trader")[0])
    account.members.add(user)
    if Fill.objects.filter(account=account).count() >= fills:
        _analyze()
        return  # seeded by an earlier run
    btc = Symbol.objects.get(name="BTC-USD")
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    per_order = 1000
    orders = Order.objects.bulk_create(
        Order(account=account, symbol=btc, side="buy" if i % 2 == 0 else "sell",
              quantity=per_order, status="filled", filled_quantity=per_order,
              created_at=t0 + timedelta(seconds=i), updated_at=t0 + timedelta(seconds=i))
        for i in range(fills // per_order)
    )  # fmt: skip
    started = time.perf_counter()
    _load(
        Fill._meta.db_table,
        ["order_id", "account_id", "symbol_id", "side", "quantity", "price", "fee",
         "liquidity", "venue_trade_id", "ts"],
        ((o.pk, account.pk, btc.pk, o.side, "1", f"{50000 + (i % 997)}.5", "0.05", "taker",
          str(i), t0 + timedelta(seconds=n * per_order + i))
         for n, o in enumerate(orders) for i in range(per_order)),
    )  # fmt: skip
    print(f"seeded {fills:,} fills in {time.perf_counter() - started:.1f} s")
    _load(
        PortfolioSnapshot._meta.db_table,
        ["account_id", "ts", "cash", "positions_value", "total_value", "equity",
         "gross_exposure", "net_exposure", "realized_pnl", "unrealized_pnl", "total_pnl",
         "daily_pnl", "total_return", "daily_return", "drawdown"],
        ((account.pk, t0 + timedelta(minutes=i), "100000", "0", f"{100000 + i % 500}",
          f"{100000 + i % 500}", "0", "0", "0", "0", "0", "0", 0.0, 0.0, 0.0)
         for i in range(snapshots)),
    )  # fmt: skip
    model = MLModel.objects.create(name="bench", model_type="lstm", version=1)
    now = datetime.now(UTC)
    _load(
        Prediction._meta.db_table,
        ["model_id", "symbol_id", "ts", "kind", "horizon", "value", "confidence", "features",
         "created_at"],
        ((model.pk, btc.pk, t0 + timedelta(minutes=i), "direction", 1, 0.5, 0.5, "{}", now)
         for i in range(predictions)),
    )  # fmt: skip
    _analyze()


def _analyze() -> None:
    """Refresh the planner's statistics after the bulk load (autovacuum would, minutes later)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _token(client, base: str) -> str:
    response = await client.post(  # PBKDF2 on a busy host can take seconds
        f"{base}/api/v1/auth/token", json={"username": "bench", "password": PASSWORD}, timeout=120
    )
    response.raise_for_status()
    return response.json()["access"]


async def _warm(base: str, paths: list[str]) -> str:
    """Log in; request each route a few times in every worker (imports, pool, caches)."""
    import httpx

    async with httpx.AsyncClient(timeout=120) as client:
        token = await _token(client, base)
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(8):
            await asyncio.gather(*(client.get(base + path, headers=headers) for path in paths))
    return token


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ", 2)[1])
    fields = {
        k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
    }
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return code


async def load(
    base: str, rate: float, duration: float, connections: int = 64, meter: CpuMeter | None = None
) -> dict[str, tuple[list[float], int]]:
    """Send ``rate`` requests/s for ``duration`` s; return latencies (ms) and errors per path.

    Open loop: a scheduler queues each request at its due time; ``connections`` keep-alive
    connections (a small raw HTTP/1.1 client: httpx costs more CPU than the server on a busy
    2-core host) take them in order. A request waiting for a free connection counts as latency.
    """
    paths = [*ENDPOINTS, REFERENCE]
    results: dict[str, tuple[list[float], list[int]]] = {p: ([], [0]) for p in paths}
    token = await _warm(base, paths)
    host, port = base.removeprefix("http://").split(":")
    requests = {
        p: (f"GET {p} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
        for p in paths
    }
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    total = int(rate * duration)

    async def worker() -> None:
        reader = writer = None
        while True:
            item = await queue.get()
            if item is None:
                break
            i, due = item
            path = paths[i % len(paths)]
            ok = False
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(requests[path])
                ok = await asyncio.wait_for(_read_response(reader), 10) == 200
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                if writer is not None:
                    writer.close()
                reader = writer = None
            latencies, errors = results[path]
            latencies.append((loop.time() - due) * 1000)
            errors[0] += not ok
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    if meter is not None:
        meter.start()
    await _pace(queue, rate, total)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    if meter is not None:
        meter.stop()
    return {p: (lat, err[0]) for p, (lat, err) in results.items()}


async def _pace(queue: asyncio.Queue, rate: float, total: int) -> None:
    """Queue request ``i`` at its due time ``start + i / rate``, whatever the answers do."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))


def server_command(server: str, port: int, workers: int) -> list[str]:
    """Return the web server's command line (as docs/deploy.md runs it, on loopback)."""
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port),
                "rrr_site.asgi:application"]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", "rrr_site.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip


def serve_and_load(
    env: dict[str, str], rate: float, duration: float, server_name: str = "uvicorn",
    workers: int = 2,
) -> dict:  # fmt: skip
    """Run the web server on a free loopback port, load it, stop it."""
    port = _free_port()
    log = tempfile.TemporaryFile()  # a pipe nobody reads would fill up and stall the server
    server = subprocess.Popen(
        server_command(server_name, port, workers),
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode()
                    raise SystemExit(f"{server_name} did not start: {output}") from None
                time.sleep(0.1)
        meter = CpuMeter(server.pid)
        results = _run(load(f"http://127.0.0.1:{port}", rate, duration, meter=meter))
        return {"latency": results, "cpu": meter.spent}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _tree_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) of process ``pid`` and all its descendants."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _postgres_cpu() -> float:
    """Return the CPU seconds of every PostgreSQL process on the host (the server's share)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in {"postgres", "postmaster"}:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    return total


class CpuMeter:
    """CPU seconds of the server's processes, of PostgreSQL and of this generator over the
    measured phase (after the warm-up)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start_marks: tuple[float, float, float] | None = None
        self.spent: dict[str, float] = {}

    def _marks(self) -> tuple[float, float, float]:
        return _tree_cpu(self.server_pid), _postgres_cpu(), time.process_time()

    def start(self) -> None:
        self.start_marks = self._marks()

    def stop(self) -> None:
        end = self._marks()
        names = ("server", "postgresql", "generator")
        self.spent = {n: b - a for n, a, b in zip(names, self.start_marks, end, strict=True)}


def _run(coroutine):
    """Run the generator's loop (uvloop when installed: its own CPU is reported, keep it low)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def report(label: str, results: dict, duration: float) -> None:
    """Print one table: p50/p99 per endpoint, errors, and p99 as a ratio of /health's; then the
    CPU the server, PostgreSQL and the generator spent per request."""
    latency, cpu = results["latency"], results["cpu"]
    ref_p99 = float(np.percentile(latency[REFERENCE][0], 99))
    print(f"\n{label}")
    print("| endpoint | requests | p50 ms | p99 ms | errors | p99 / health p99 |")
    print("|---|---|---|---|---|---|")
    for path, (latencies, errors) in latency.items():
        p50, p99 = np.percentile(latencies, [50, 99])
        print(
            f"| {path} | {len(latencies)} | {p50:.1f} | {p99:.1f} | {errors} | "
            f"{p99 / ref_p99:.1f}x |"
        )
    sent = sum(len(lat) for lat, _ in latency.values())
    per = {name: seconds * 1000 / sent for name, seconds in cpu.items()}
    print(
        f"\nCPU per request over the run (the four paths alike): server {per['server']:.2f} ms, "
        f"PostgreSQL {per['postgresql']:.2f} ms (every postgres process on the host), "
        f"generator {per['generator']:.2f} ms: {sum(cpu.values()) / duration:.2f} of the "
        f"{os.cpu_count()} CPUs busy with this load"
    )


def cpu_per_endpoint(requests: int) -> None:
    """Print the server's CPU per request of each endpoint, in this process: the ASGI app called
    directly (no sockets, no server), ``requests`` times each, beside /health's."""
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    from rrr_site.asgi import application

    token = str(AccessToken.for_user(get_user_model().objects.get(username="bench")))

    async def call(path: str) -> int:
        route, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": route, "raw_path": route.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": b"", "more_body": False}]
        sent: list[dict] = []

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # no disconnect: the request runs to its end

        async def send(message: dict) -> None:
            sent.append(message)

        await application(scope, receive, send)
        return sent[0]["status"]

    async def measure() -> dict[str, float]:
        spent = {}
        for path in [*ENDPOINTS, REFERENCE]:
            for _ in range(10):  # warm: imports, the pool, caches
                assert await call(path) == 200, path
            started = time.process_time()
            for _ in range(requests):
                await call(path)
            spent[path] = (time.process_time() - started) * 1000 / requests
        return spent

    spent = asyncio.run(measure())
    print(f"\nServer CPU per request in-process (the ASGI app called {requests} times each)")
    print("| endpoint | CPU ms / request | / health |")
    print("|---|---|---|")
    for path, ms in spent.items():
        print(f"| {path} | {ms:.2f} | {ms / spent[REFERENCE]:.1f}x |")


def main() -> None:
    """Seed, serve, load and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="a fresh SQLite file instead")
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (60 for figures)")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes"
    )
    parser.add_argument(
        "--cpu-requests", type=int, default=300,
        help="then the server CPU per request of each endpoint in-process (0: skip)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.server == "daphne":
        args.workers = 1
    env = {
        "DJANGO_ENV": "development",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_USER": "1000000/minute",
        # As deployed (docs/deploy.md): under ASGI every request runs in a thread of its own,
        # its PostgreSQL connection comes from the web process's pool (ignored on SQLite).
        "DB_POOL_MAX_SIZE": "8",
        "RRR_DATA_DIR": tempfile.mkdtemp(prefix="rrr-bench-api-"),
    }
    if args.sqlite:
        env["SQLITE_PATH"] = str(Path(env["RRR_DATA_DIR"]) / "bench.db")
        os.environ.pop("DATABASE_URL", None)
        label = "SQLite (WAL)"
    elif "DATABASE_URL" in os.environ:
        label = "PostgreSQL"
    else:
        raise SystemExit("set DATABASE_URL to a scratch PostgreSQL database, or pass --sqlite")
    _setup_django(env)
    seed(args.fills, args.snapshots, args.predictions)
    from django.db import connections

    connections.close_all()
    before = os.getloadavg()
    results = serve_and_load(env, args.rate, args.duration, args.server, args.workers)
    after = os.getloadavg()
    report(
        f"{label}: {args.rate:g} req/s for {args.duration:g} s, {args.fills:,} fills, "
        f"{args.predictions:,} predictions, {args.snapshots:,} snapshots ({args.server}, "
        f"{args.workers} process{'es' if args.workers > 1 else ''}; {os.cpu_count()} CPUs, load "
        f"average {before[0]:.1f} before, {after[0]:.1f} after)",
        results,
        args.duration,
    )
    if args.cpu_requests:
        cpu_per_endpoint(args.cpu_requests)


if __name__ == "__main__":
    main()
