"""End to end: ``manage.py backtest`` on bars stored in PostgreSQL vs backtesting.py on a CSV.

    .venv/bin/python bench/backtest_e2e.py [--bars 200000] [--runs 3] [--pg-url URL]

Ours is the whole command in a fresh process, timed from outside: interpreter and Django
start-up, loading the bars from PostgreSQL, the event-driven run, the report, storing trades and
metrics (``--profile`` splits it; the split of the best run is printed). The peer,
backtesting.py in ``.venv-bench``, reads the same bars from a CSV file exported from the same
table and runs; its read + run is timed inside its process (its interpreter start-up and
imports are not counted: a handicap for us). Same strategy and rules as
bench/backtest_peers.py: long-only SMA(10/30), all-in (0.9999 / 1.001 of equity, 1e-8 lots),
0.1 % commission rounded as RRR's venue rounds it, fills at the next open, no risk limits
(buying power at 1x applies). Both must report the same number of trades. Target: our whole
command at least as fast as the peer's read + run (ratio >= 1). Beside the wall seconds: each
side's whole-process CPU seconds (interpreter start-up and imports included on both sides) and
our phases' CPU seconds, which a busy machine does not inflate the way it does the wall clock.

The bars are the simulated market's (``--source sim``): the first, untimed, run generates and
stores them in the bench database (created when missing) marked simulated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backtest_peers import peer_python  # noqa: E402
from bench.common import ensure_pg_database  # noqa: E402

PEER = Path(__file__).with_name("backtest_peer.py")
FAST, SLOW = 10, 30
FRACTION = Decimal("0.9999") / Decimal("1.001")  # backtesting.py's all-in size, as the peer bench
START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/rrr_bench_e2e"


def command(bars: int) -> list[str]:
    """Return the backtest command line over ``bars`` one-minute bars."""
    end = START + timedelta(minutes=bars)
    return [
        sys.executable, str(ROOT / "manage.py"), "backtest", "--strategy", "sma_cross",
        "--param", f"fast={FAST}", "--param", f"slow={SLOW}", "--param", f"fraction={FRACTION}",
        "--param", "lot=0.00000001", "--symbols", "BTC-USD", "--timeframe", "1m",
        "--start", START.isoformat(), "--end", end.isoformat(), "--source", "sim", "--no-risk",
        "--fees-bps", "10", "--capital", "100000", "--json", "--profile",
    ]  # fmt: skip


def environment(pg_url: str, data_dir: Path) -> dict[str, str]:
    """Return the command's environment: the bench database, reports in a temporary dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTHONPATH")}
    return env | {"DATABASE_URL": pg_url, "RRR_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}


def run_ours(argv: list[str], env: dict[str, str]) -> tuple[float, dict, dict]:
    """Run the command once; return its wall time, the run's JSON and the profile.

    The profile carries the command's CPU seconds too (``cpu``: its own, by phase, and
    ``cpu_process``: the process's user + system time as the OS counted it).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"backtest failed:\n{done.stderr[-3000:]}")
    docs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, docs[0], docs[1]["profile"] | {"cpu": docs[1].get("profile_cpu", {}),
                                                   "cpu_process": cpu}  # fmt: skip


def export_csv(pg_url: str, bars: int, path: Path) -> int:
    """Write the stored simulated bars of the range to ``path`` as CSV; return the row count."""
    import psycopg

    end = START + timedelta(minutes=bars)
    query = (
        "SELECT b.ts, b.open, b.high, b.low, b.close, b.volume FROM marketdata_bar b "
        "JOIN marketdata_symbol s ON s.id = b.symbol_id WHERE s.name = 'BTC-USD' "
        "AND b.timeframe = '1m' AND b.simulated AND b.ts >= %s AND b.ts < %s ORDER BY b.ts"
    )
    with psycopg.connect(pg_url) as conn, psycopg.ClientCursor(conn) as cur, path.open("wb") as out:
        cur.execute("SET TIME ZONE 'UTC'")
        sql = cur.mogrify(query, [START, end])
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                out.write(chunk)
    with path.open() as f:
        return sum(1 for _ in f) - 1


def run_peer(python: Path, csv: Path, repeat: int) -> dict:
    """Run backtesting.py on the CSV ``repeat`` times (read + run each); return its report."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    argv = [str(python), str(PEER), "backtesting-csv", str(csv), str(FAST), str(SLOW), str(repeat)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=PEER.parent)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"peer failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"cpu_process": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=200_000, help="one-minute bars")
    parser.add_argument("--runs", type=int, default=3, help="timed runs on each side (best kept)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="bench database (created if missing)")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-bench", help="peers' venv")
    args = parser.parse_args()
    python = peer_python(args.venv, setup=True)
    ensure_pg_database(args.pg_url)
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(args.pg_url, Path(tmp))
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
        argv = command(args.bars)
        print(f"storing {args.bars:,} simulated 1m bars (untimed first run) ...", flush=True)
        run_ours(argv, env)
        csv = Path(tmp) / "bars.csv"
        rows = export_csv(args.pg_url, args.bars, csv)
        print(f"{rows:,} bars in PostgreSQL and in {csv.name}", flush=True)
        ours = []
        peer_runs: list[float] = []
        peer_cpus: list[float] = []
        peer = {}
        for k in range(max(1, args.runs)):
            print(f"round {k + 1}/{args.runs}: manage.py backtest, then backtesting.py ...",
                  flush=True)  # fmt: skip
            ours.append(run_ours(argv, env))
            peer = run_peer(python, csv, 1)
            peer_runs += peer["runs"]
            peer_cpus.append(peer["cpu_process"])
    return report(ours, peer | {"cpu_process": min(peer_cpus)}, peer_runs, rows)


def report(ours: list[tuple[float, dict, dict]], peer: dict, peer_runs: list[float], rows: int):
    """Print the comparison and the best run's profile; return the exit code."""
    best_seconds, best_doc, best_profile = min(ours, key=lambda o: o[0])
    peer_best = min(peer_runs)
    ratio = peer_best / best_seconds
    trades = int(best_doc["metrics"]["trades"])
    print()
    print(f"{'side':48} {'seconds':>8}  runs")
    print(f"{'ours: manage.py backtest (whole command)':48} {best_seconds:>8.3f}  "
          + "/".join(f"{o[0]:.2f}" for o in ours))  # fmt: skip
    peer_label = f"backtesting.py {peer['version']}: read CSV + run"
    peer_times = "/".join(f"{t:.2f}" for t in peer_runs)
    print(f"{peer_label:48} {peer_best:>8.3f}  {peer_times}  (read {peer['read_seconds']:.2f} s)")
    verdict = "PASS" if ratio >= 1 else "MISS"
    print(f"\nours / peer speed: {ratio:.2f}x (target >= 1x) {verdict}")
    # CPU seconds, whatever else ran beside them: each whole process (interpreter start-up and
    # imports included on both sides, unlike the wall figures above), and the peer's run alone.
    ours_cpu, peer_cpu = min(o[2]["cpu_process"] for o in ours), peer["cpu_process"]
    print(f"CPU seconds, whole processes: ours {ours_cpu:.3f}, backtesting.py {peer_cpu:.3f} "
          f"(its run alone {peer['cpu']:.3f}): {peer_cpu / ours_cpu:.2f}x")  # fmt: skip
    same = trades == peer["trades"]
    print(f"same trades: {'PASS' if same else 'FAIL'}  ours {trades}, backtesting.py "
          f"{peer['trades']} on {rows:,} bars")  # fmt: skip
    total = best_profile["total"]
    cpu = best_profile["cpu"]
    print("\nour best run, by phase (backtest --profile; medians of all runs beside; CPU s):")
    for name, seconds in best_profile.items():
        if name in ("total", "cpu", "cpu_process"):
            continue
        median = statistics.median(o[2][name] for o in ours)
        print(f"  {name:<12} {seconds:>7.3f} s {seconds / total:>6.1%}   median {median:.3f} s"
              f"   cpu {cpu.get(name, 0.0):.3f} s")  # fmt: skip
    print(f"  {'total':<12} {total:>7.3f} s{'cpu':>32} {cpu.get('total', 0.0):.3f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
