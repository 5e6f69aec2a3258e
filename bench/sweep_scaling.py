"""Sweep scaling: one sweep's trials on 1, 2 and 4 ``qcluster`` processes on PostgreSQL + Redis.

    python bench/sweep_scaling.py [--trials 16] [--days 10] [--workers 1,2,4]

The same grid sweep (sma_cross on 1m simulated BTC-USD bars, every trial a django-q2 task) runs
first inline in this process (the reference: no broker, no cluster; after one unmeasured warm-up
sweep, so imports are not counted), then on N real
``manage.py qcluster`` processes (one worker each) for each N. It prints each wall time, the
speed-up against the inline run and against one cluster process, and Amdahl's model with the
serial fraction measured here (from N=2 against N=1), extrapolated to hosts of 2 cores each.
The machine has 2 cores: beyond 2 processes the measured speed-up cannot grow.

Needs PostgreSQL (``--pg-url``, default ``$SWEEP_DATABASE_URL`` or ``rrr_sweep`` on 127.0.0.1;
it is dropped and recreated) and Redis (``--redis-url``, default db 12 on 127.0.0.1; its task
list is emptied).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SWEEP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rrr_sweep"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("SWEEP_REDIS_URL", "redis://127.0.0.1:6379/12")
    )
    return parser.parse_args()


def prepare(args: argparse.Namespace) -> dict[str, str]:
    """Recreate the database, empty the task list, migrate; set this process up on them."""
    import psycopg
    import redis
    from psycopg import sql

    name = args.pg_url.rsplit("/", 1)[1]
    with psycopg.connect(args.pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    redis.Redis.from_url(args.redis_url).delete("django_q:rrr:q")  # tasks of an earlier run
    env = {k: v for k, v in os.environ.items() if k not in {"SQLITE_PATH", "PYTEST_VERSION"}}
    env.update(
        DATABASE_URL=args.pg_url, REDIS_URL=args.redis_url, Q_SYNC="false", Q_WORKERS="1",
        LOG_LEVEL="WARNING", RRR_DATA_DIR=tempfile.mkdtemp(prefix="rrr-sweep-"),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "rrr_site.settings"
    import django

    django.setup()
    return env


def space_for(trials: int) -> list[str]:
    """A grid of ``trials`` sma_cross sets (fast 2..; slow 50 and 80)."""
    fast = max(1, trials // 2)
    return [f"fast=2:{2 + 2 * (fast - 1)}:2", "slow=50:80:30"]


def one_sweep(args: argparse.Namespace, distributed: bool) -> tuple[float, int]:
    """Run one grid sweep; return its wall seconds and its number of trials."""
    from backtesting.services import Costs, backtest_run_create, parse_space, sweep_execute

    start = datetime(2024, 1, 1, tzinfo=UTC)
    parent = backtest_run_create(
        strategy="sma_cross", params={}, symbols=["BTC-USD"], timeframe="1m", start=start,
        end=start + timedelta(days=args.days), costs=Costs(risk={}), optimize="grid",
        data_source="sim",
    )
    began = time.perf_counter()
    found = sweep_execute(
        parent=parent, method="grid", space=parse_space("sma_cross", space_for(args.trials)),
        distributed=distributed,
    )
    return time.perf_counter() - began, len(found.trials)


def start_clusters(env: dict[str, str], n: int, logs: Path) -> list[subprocess.Popen]:
    """Start ``n`` qcluster processes; return once each says it is running."""
    procs = []
    for i in range(n):
        log = logs / f"qcluster-{n}-{i}.log"
        with log.open("w") as err:
            procs.append(subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"], cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True, env={**env, "LOG_LEVEL": "INFO"},
            ))
        procs[-1].log = log
    deadline = time.monotonic() + 180
    while not all("running." in p.log.read_text() for p in procs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("a qcluster did not start: " + procs[0].log.read_text()[-2000:])
        time.sleep(0.2)
    return procs


def stop_clusters(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def amdahl(serial: float, n: float) -> float:
    return 1.0 / (serial + (1.0 - serial) / n)


def main() -> int:
    args = parse_args()
    env = prepare(args)
    from backtesting.services import bars_for

    start = datetime(2024, 1, 1, tzinfo=UTC)
    bars, _ = bars_for(symbols=["BTC-USD"], timeframe="1m", start=start,
                       end=start + timedelta(days=args.days), source="sim")
    one_sweep(args, distributed=False)  # warm-up: imports, plotly, statistics (not measured)
    inline, trials = one_sweep(args, distributed=False)
    print(f"sweep: {trials} trials of sma_cross on {len(bars)} 1m bars, "
          f"PostgreSQL + Redis, {os.cpu_count()} cores")
    print(f"{'processes':>9} {'wall (s)':>9} {'vs inline':>10} {'vs 1 process':>13}")
    print(f"{'inline':>9} {inline:9.2f} {1.0:10.2f} {'':>13}")
    logs = Path(tempfile.mkdtemp(prefix="rrr-sweep-logs-"))
    walls: dict[int, float] = {}
    for n in [int(x) for x in args.workers.split(",")]:
        procs = start_clusters(env, n, logs)
        try:
            walls[n], _ = one_sweep(args, distributed=True)
        finally:
            stop_clusters(procs)
        one = walls.get(1, walls[n])
        print(f"{n:9d} {walls[n]:9.2f} {inline / walls[n]:10.2f} {one / walls[n]:13.2f}")
    if 1 in walls and 2 in walls:
        speedup = walls[1] / walls[2]
        serial = min(1.0, max(0.0, 2.0 / speedup - 1.0))  # Amdahl solved for N=2
        print(f"Amdahl: serial fraction {serial:.3f} (from 2 processes vs 1 on 2 cores); "
              "hosts of 2 cores each would give:")
        for hosts in (1, 2, 4, 8, 16):
            print(f"  {hosts:2d} host(s), {2 * hosts:2d} workers: speed-up "
                  f"{amdahl(serial, 2 * hosts):5.2f} x one worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
