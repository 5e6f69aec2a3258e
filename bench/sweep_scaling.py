"""Sweep scaling: one sweep's trials inline and on 1, 2 and 4 ``qcluster`` processes, PostgreSQL +
Redis, and a model of what N hosts would give.

    python bench/sweep_scaling.py [--trials 64] [--days 90] [--workers 1,2,4]

The same grid sweep (sma_cross on 1m simulated BTC-USD bars; every trial a django-q2 task) runs
first inline in this process (the reference: no broker, no cluster; after a small unmeasured
warm-up sweep, so imports are not counted), then on N real ``manage.py qcluster`` processes
(one worker each) for each N. Each row gives the wall time, the speed-up against the inline run
and against one cluster process, and the CPU seconds of the cluster processes and of this one
(the dispatcher): on a shared 2-core machine wall times are noisy, CPU seconds less so.

The model (printed after the table, labelled as one) is built from what this run measured, all
from the one-process sweep (one load on the machine for every part; the inline run alone if
``--workers`` has no 1), by its trial rows' start and finish stamps:
- per-trial cost: the median trial's duration (its claim to its stored result);
- per-task overhead: the one worker runs the trials back to back; the mean gap between one
  trial's finish and the next one's start (the task's result saved, the next task taken from
  the broker, the trial's lock taken);
- serial part: the sweep's wall time outside the trials' span (creating the trial rows, the
  full backtest of the best set with its report, the overfitting statistics, the last poll);
- bars load: one read of the sweep's bars from the database (best of 3, in this process), which
  every worker process does once per sweep (``backtesting.trial_bars``).
It predicts ``serial + load + ceil(trials / P) * (trial + overhead)`` for P = hosts x
min(workers, cores) worker processes running at once; a machine with more workers than cores
runs no more than ``cores`` trials at a time.

Clusters are stopped as django-q2 expects (SIGTERM to each main process only; see
``tests/qcluster_process.py`` for why never the whole process group). One that is still alive
after ``--stop-grace`` seconds is killed, and the output says which of its processes hung and
what they waited in.

Needs PostgreSQL (``--pg-url``, default ``$SWEEP_DATABASE_URL`` or ``rrr_sweep`` on 127.0.0.1;
it is dropped and recreated) and Redis (``--redis-url``, default ``$SWEEP_REDIS_URL`` or db 11 on
127.0.0.1; its task list is emptied).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.qcluster_process import (  # noqa: E402 - after the path is set
    group_members,
    qcluster_log,
    qcluster_running,
    qcluster_start,
    qcluster_stop,
    qcluster_stop_all,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=64, help="grid size (even; default 64)")
    parser.add_argument("--days", type=float, default=90.0, help="days of 1m bars (default 90)")
    parser.add_argument("--workers", default="1,2,4", help="cluster process counts to run")
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=60.0,
        help="seconds a cluster may take to stop after SIGTERM before SIGKILL",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "SWEEP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rrr_sweep"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("SWEEP_REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    args = parser.parse_args()
    if args.trials < 2:
        parser.error("--trials must be at least 2")
    return args


def prepare(args: argparse.Namespace) -> dict[str, str]:
    """Recreate the database, empty the task list, migrate; set this process up on them."""
    import subprocess

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
        DATABASE_URL=args.pg_url,
        REDIS_URL=args.redis_url,
        Q_SYNC="false",
        Q_WORKERS="1",
        LOG_LEVEL="WARNING",
        RRR_DATA_DIR=tempfile.mkdtemp(prefix="rrr-sweep-"),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "rrr_site.settings"
    import django

    django.setup()
    return env


def space_for(trials: int) -> list[str]:
    """A grid of ``trials`` sma_cross sets: fast 2, 4, ... with two slow lengths above them all."""
    fast = max(1, trials // 2)
    slow = 2 * fast + 10  # every set keeps fast < slow: none is dropped by the constraint
    return [f"fast=2:{2 * fast}:2", f"slow={slow}:{slow + 30}:30"]


@dataclass(slots=True)
class Sweep:
    """What one sweep took: wall and this process's CPU seconds; its trials' durations and span
    (from the first trial's start to the last one's finish), by their rows' stamps."""

    wall: float
    cpu: float
    durations: list[float]
    span: float

    @property
    def trials(self) -> int:
        return len(self.durations)


class Progress:
    """Show a sweep's trials done on stderr (one line rewritten on a terminal, else every 10 %)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        step = done * 10 // max(1, total)
        if self.tty:
            sys.stderr.write(f"\r  {self.label}: {done}/{total} trials")
        elif step != self.shown:
            sys.stderr.write(f"  {self.label}: {done}/{total} trials\n")
        self.shown = step
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def one_sweep(args: argparse.Namespace, distributed: bool, trials: int, label: str) -> Sweep:
    """Run one grid sweep of ``trials`` sets; return its wall and CPU seconds and trial times."""
    from backtesting.models import BacktestRun
    from backtesting.services import Costs, backtest_run_create, parse_space, sweep_execute

    parent = backtest_run_create(
        strategy="sma_cross",
        params={},
        symbols=["BTC-USD"],
        timeframe="1m",
        start=START,
        end=START + timedelta(days=args.days),
        costs=Costs(risk={}),
        optimize="grid",
        data_source="sim",
    )
    progress = Progress(label)
    began, cpu = time.perf_counter(), time.process_time()
    sweep_execute(
        parent=parent,
        method="grid",
        space=parse_space("sma_cross", space_for(trials)),
        distributed=distributed,
        progress=progress,
    )
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    progress.close()
    stamps = BacktestRun.objects.filter(parent=parent).values_list("started_at", "finished_at")
    starts, ends = zip(*stamps, strict=True)
    durations = [(end - start).total_seconds() for start, end in stamps]
    return Sweep(wall, cpu, durations, (max(ends) - min(starts)).total_seconds())


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of a process group."""
    total = 0
    for pid in group_members(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (state is field 0 here)
    return total / CLOCK_TICKS


def start_clusters(env: dict[str, str], n: int, logs: Path) -> list:
    """Start ``n`` qcluster processes; return once each says it is running."""
    procs = [
        qcluster_start({**env, "LOG_LEVEL": "INFO"}, logs / f"qcluster-{n}-{i}.log")
        for i in range(n)
    ]
    deadline = time.monotonic() + 300
    while not all(qcluster_running(p) for p in procs):
        failed = next((p for p in procs if p.poll() is not None), None)
        if failed is not None or time.monotonic() > deadline:
            for proc in procs:
                qcluster_stop(proc, grace=10)
            raise SystemExit(f"a qcluster did not start: {qcluster_log(failed or procs[0])}")
        time.sleep(0.2)
    return procs


@dataclass(slots=True)
class Model:
    """Sweep time as measured parts: serial + bars load + rounds of (trial + task overhead)."""

    trials: int
    serial: float
    load: float
    trial: float
    overhead: float

    def predict(self, parallel: int) -> float:
        """Seconds for the sweep with ``parallel`` worker processes running trials at once."""
        return (
            self.serial
            + self.load
            + math.ceil(self.trials / parallel) * (self.trial + self.overhead)
        )


def model_of(one: Sweep, load: float) -> Model:
    """The model's parts from a sweep whose trials ran one after another on one worker."""
    gaps = one.span - sum(one.durations)  # between one trial's finish and the next's start
    return Model(
        trials=one.trials,
        serial=max(0.0, one.wall - one.span),
        load=load,
        trial=statistics.median(one.durations),
        overhead=max(0.0, gaps / max(1, one.trials - 1)),
    )


def bars_load_seconds(args: argparse.Namespace) -> float:
    """Seconds one read of the sweep's bars from the database takes (best of 3)."""
    from backtesting.services import bars_for

    best = math.inf
    for _ in range(3):
        began = time.perf_counter()
        bars_for(
            symbols=["BTC-USD"],
            timeframe="1m",
            start=START,
            end=START + timedelta(days=args.days),
            source="sim",
        )
        best = min(best, time.perf_counter() - began)
    return best


def print_model(model: Model, walls: dict[int, float], cores: int, source: str) -> None:
    print(
        f"\nMODEL (not a measurement): per trial {model.trial:.3f} s (median), per-task "
        f"overhead {model.overhead:.3f} s, bars load {model.load:.3f} s "
        f"once per worker, serial part {model.serial:.2f} s (parts from the {source} sweep);\n"
        f"  time = serial + load + ceil({model.trials} / P) x (trial + overhead), "
        "P = hosts x min(workers, cores)"
    )
    for n, wall in walls.items():
        predicted = model.predict(min(n, cores))
        print(f"  this host, {n} process(es): model {predicted:6.2f} s, measured {wall:6.2f} s")
    widths = sorted({1, cores, 2 * cores})
    print(
        f"  N hosts of {cores} cores x W workers each, seconds (speed-up over one worker); the "
        "database and broker assumed not to saturate:"
    )
    print("  hosts " + "".join(f"{f'W={w}':>18}" for w in widths))
    for hosts in (1, 2, 4, 8, 16):
        cells = []
        for workers in widths:
            predicted = model.predict(hosts * min(workers, cores))
            cells.append(f"{predicted:9.2f} ({model.predict(1) / predicted:5.2f}x)")
        print(f"  {hosts:5d} " + "".join(f"{cell:>18}" for cell in cells))


def main() -> int:
    args = parse_args()
    env = prepare(args)
    from backtesting.services import bars_for

    bars, _ = bars_for(
        symbols=["BTC-USD"],
        timeframe="1m",
        start=START,
        end=START + timedelta(days=args.days),
        source="sim",
    )  # stored once
    one_sweep(args, False, 2, "warm-up")  # imports, plotly, statistics (not measured)
    cores = os.cpu_count() or 1
    print(
        f"sweep: {2 * (args.trials // 2)} trials of sma_cross on {len(bars):,} 1m bars, "
        f"PostgreSQL + Redis, {cores} cores, load average {os.getloadavg()[0]:.1f} at the start",
        flush=True,
    )
    inline = one_sweep(args, False, args.trials, "inline")
    load = bars_load_seconds(args)
    header = (
        f"{'processes':>9} {'wall (s)':>9} {'vs inline':>10} {'vs 1 process':>13} "
        f"{'cluster cpu (s)':>16} {'dispatcher cpu (s)':>19}"
    )
    print(header)
    print(
        f"{'inline':>9} {inline.wall:9.2f} {1.0:10.2f} {'':>13} {'':>16} {inline.cpu:19.2f}",
        flush=True,
    )
    logs = Path(tempfile.mkdtemp(prefix="rrr-sweep-logs-"))
    walls: dict[int, float] = {}
    runs: dict[int, Sweep] = {}
    for n in [int(x) for x in args.workers.split(",")]:
        procs = start_clusters(env, n, logs)
        idle_cpu = sum(group_cpu(p.pid) for p in procs)
        try:
            runs[n] = one_sweep(args, True, args.trials, f"{n} process(es)")
            cluster_cpu = sum(group_cpu(p.pid) for p in procs) - idle_cpu
        finally:
            hung = [r for r in qcluster_stop_all(procs, args.stop_grace) if r]
        walls[n] = runs[n].wall
        one = walls.get(1, walls[n])
        print(
            f"{n:9d} {walls[n]:9.2f} {inline.wall / walls[n]:10.2f} {one / walls[n]:13.2f} "
            f"{cluster_cpu:16.2f} {runs[n].cpu:19.2f}",
            flush=True,
        )
        for report in hung:
            print(f"  STOP HUNG: {report}", flush=True)
    source = "1-process" if 1 in runs else "inline"
    print_model(model_of(runs.get(1, inline), load), walls, cores, source)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; cluster logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
