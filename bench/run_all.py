"""Run every benchmark in turn (``make bench``); each prints its figures next to its reference.

    .venv/bin/python bench/run_all.py [--quick]

``--quick`` shrinks the workloads for a smoke run. The peer backtest benchmark needs
``.venv-bench`` (``bench/backtest_setup.sh`` creates it from PyPI: backtesting.py, vectorbt).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = [
    ("market data throughput", ["marketdata_throughput.py"], ["--trades", "50000"]),
    ("market data latency", ["marketdata_latency.py"], ["--seconds", "3"]),
    ("order path", ["trading_order_path.py"], ["--orders", "5000"]),
    ("pre-trade risk checks", ["risk_pretrade.py"], ["--orders", "10000"]),
    ("monitoring overhead and alerts", ["monitoring_overhead.py"], ["--ticks", "20000"]),
    ("sync stream publish", ["publish_sync.py"], ["--messages", "300", "--rounds", "3"]),
    ("ML inference and training", ["ml_inference.py"], ["--quick"]),
    ("backtest vs peers", ["backtest_peers.py"], ["--bars", "100000", "--combos", "20"]),
    ("backtest end to end (PostgreSQL)", ["backtest_e2e.py"], ["--bars", "50000", "--runs", "1"]),
    ("user strategies vs peers", ["user_strategies.py"], ["--bars", "100000"]),
    ("command start-up", ["startup.py"], ["--runs", "2"]),
    ("research proofs and pair scan", ["research_scan.py"], ["--quick"]),
    ("WebSocket fan-out", ["ws_fanout.py"], ["--clients", "100", "--seconds", "5"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated substrings of benchmark names")
    args = parser.parse_args()
    failures = 0
    for name, script, quick_args in BENCHES:
        if args.only and not any(k in name for k in args.only.split(",")):
            continue
        needs_peers = any(k in script[0] for k in ("peers", "e2e", "user_strategies"))
        if needs_peers and not (HERE.parent / ".venv-bench").exists():
            print(f"\n=== {name}: skipped (run bench/backtest_setup.sh to create .venv-bench)")
            continue
        print(f"\n=== {name}", flush=True)
        cmd = [sys.executable, str(HERE / script[0]), *(quick_args if args.quick else [])]
        failures += subprocess.run(cmd, cwd=HERE.parent, check=False).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
