"""Benchmark our backtesters against backtesting.py and vectorbt on the same synthetic bars.

    .venv/bin/python bench/backtest_peers.py [--bars 1000000] [--combos 100] [--repeat 3]

On ``--bars`` one-minute bars of the simulated market (``SimulatedMarket.history_bars``), the
long-only SMA(10/30) state strategy (long while fast > slow), 0.1 % commission, fills at the next
bar's open. Sizing as bench/user_strategies.py: every entry buys ``FRACTION`` (2 %) of the equity
at the signal bar's close in whole satoshis, floored, on both sides (``sma_cross``'s
``ctx.size_for``; backtesting.py the same rule in exact Decimal, ``backtest_peer.units_for``), so
the account keeps most of its capital and the final equities compare something (all-in, it ended
in dust, where one satoshi decided entries). Both sides charge the commission as RRR's venue
does, rounded half-even to 1e-10 (``fee_as_rrr_charges`` in backtest_peer.py). The two averages
are floats, and computed differently they can order an exact tie (prices are whole cents)
differently: backtesting.py decides on the averages ``sma_cross`` computes
(``trading.engine.series.rolling_mean``, computed outside its timing).

(a) our event-driven runner next to backtesting.py: both must make the same closed trades (entry
    bar, exit bar, satoshis; the first difference is printed) and the same final equity to the
    cent; target: ours >= 5x backtesting.py's bars per CPU second. The runner uses
    its sparse replay (``sma_cross`` has a decision table: only the bars where something can
    happen go through the engine); the full replay of every bar (``sparse=False``, same trades)
    is printed beside it for information. The machine is shared and noisy, so ``--repeat``
    rounds each run ours once and backtesting.py once, and the best run of each side is
    compared (every time is printed);
(b) our vectorised path next to vectorbt's ``Portfolio.from_signals``, single run (best of
    ``--repeat`` on both sides) and a sweep of
    ``--combos`` (fast, slow) pairs, both timed from the bars frame to trades and final equity
    (signals included, metrics not); target: ours at least as fast as vectorbt warm, i.e. after
    numba compiled (the cold figure is printed too). vectorbt sizes 2 % of its cash at the
    fill price (``size_type="percent"``, no lot rounding): its trades are informational.

The peers run in ``.venv-bench`` (created by bench/backtest_setup.sh when missing) in a
subprocess that reads the bars from an .npz file and times itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from backtesting.engine.runner import BacktestConfig, prepare_bars, run_backtest  # noqa: E402
from backtesting.engine.vectorised import run_vectorised, sweep  # noqa: E402
from marketdata.engine.simulator import SimulatedMarket  # noqa: E402
from trading.engine.series import rolling_mean  # noqa: E402
from trading.engine.strategies import create_strategy  # noqa: E402

FAST, SLOW = 10, 30
CASH = Decimal(100_000)
FRACTION = Decimal("0.02")  # of equity per entry, on both sides (as bench/user_strategies.py)
LOT = Decimal("0.00000001")  # one satoshi: entries are floored to whole satoshis
CONFIG = BacktestConfig(initial_cash=CASH, taker_fee_bps=Decimal(10), fill_model="next_open")
PEER = Path(__file__).with_name("backtest_peer.py")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    name: str
    ours: float
    peer: float
    unit: str
    target: float  # minimum ours/peer speed ratio
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.peer if self.unit == "bars/s" else self.peer / self.ours

    @property
    def passed(self) -> bool:
        return self.ratio >= self.target


def peer_python(venv: Path, setup: bool) -> Path:
    """Return the peers' interpreter, creating .venv-bench first if needed."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import backtesting, vectorbt"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    if not setup:
        raise SystemExit(f"{venv} lacks the peers; run bench/backtest_setup.sh")
    print("creating .venv-bench with backtesting.py and vectorbt ...", flush=True)
    subprocess.run(["bash", str(ROOT / "bench" / "backtest_setup.sh")], check=True, cwd=ROOT)
    return python


def run_peer(python: Path, *args: str) -> dict:
    """Run the peer script and return its JSON report."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    proc = subprocess.run(
        [str(python), str(PEER), *args], capture_output=True, text=True, env=env, cwd=PEER.parent
    )
    if proc.returncode != 0:
        raise SystemExit(f"peer {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_bars(n: int):
    """Return ``n`` one-minute bars of the simulated market (seed 42) and the generation time."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    frame = SimulatedMarket(["BTC-USD"], seed=42).history_bars(
        "BTC-USD", "1m", start, start + timedelta(minutes=n)
    )
    return frame, time.perf_counter() - began


def timed(fn, *args, **kwargs):
    """Return (result, seconds)."""
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - began


def event_driven(frame, sparse: bool = True):
    """Run our event-driven runner from the DataFrame (conversion included in the time);
    return the result, its wall seconds and its CPU seconds."""
    strategy = create_strategy("sma_cross", fast=FAST, slow=SLOW, fraction=FRACTION, lot=LOT)
    cpu = time.process_time()
    result, seconds = timed(
        lambda: run_backtest(strategy, prepare_bars(frame), CONFIG, sparse=sparse)
    )
    return result, seconds, time.process_time() - cpu


def runs_note(ours: list[float], peer: list[float], walls: tuple[list[float], list[float]]) -> str:
    """Return every time of both sides (CPU, then wall), for the reader to judge the noise."""
    fmt = "/".join
    return (
        f"best of {len(ours)} interleaved, CPU s: ours {fmt(f'{t:.2f}' for t in ours)}, "
        f"peer {fmt(f'{t:.2f}' for t in peer)}; wall s: ours "
        f"{fmt(f'{t:.2f}' for t in walls[0])}, peer {fmt(f'{t:.2f}' for t in walls[1])}"
    )


def trade_list(result, frame) -> list[list[int]]:
    """Return each closed trade as [entry bar, exit bar, satoshis] (backtesting.py's form)."""
    import pandas as pd

    ts = frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)

    def bar(when) -> int:
        return int(np.searchsorted(ts, pd.Timestamp(when).value))

    return [[bar(t.entry_ts), bar(t.exit_ts), int(t.quantity / LOT)] for t in result.closed_trades]


def first_difference(mine: list, theirs: list) -> str:
    """Return where two trade lists part (empty if they do not)."""
    for k, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if a != b:
            return f"trade {k}: ours {a}, backtesting.py {b} (entry bar, exit bar, satoshis)"
    if len(mine) != len(theirs):
        return f"ours {len(mine)} closed trades, backtesting.py {len(theirs)}"
    return ""


def combos(n: int) -> tuple[list[int], list[int]]:
    """Return fast and slow windows whose product has ``n`` pairs (fast < slow always)."""
    side = max(1, int(round(n**0.5)))
    fast = list(range(5, 5 + side))
    slow = list(range(20, 20 + 5 * (n // side), 5))
    return fast, slow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--combos", type=int, default=100)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of one event-driven run on each side, interleaved (best of each kept)",
    )
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-bench")
    parser.add_argument(
        "--no-setup", action="store_true", help="fail instead of creating .venv-bench"
    )
    args = parser.parse_args()
    python = peer_python(args.venv, not args.no_setup)
    frame, gen_seconds = make_bars(args.bars)
    n = len(frame)
    print(f"{n:,} bars of BTC-USD 1m generated in {gen_seconds:.2f} s", flush=True)
    rows: list[Row] = []
    checks: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "bars.npz"
        ts = frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        close = frame["close"].to_numpy(dtype=float)
        np.savez(
            npz,
            ts=ts,
            fast=rolling_mean(close, FAST),  # what sma_cross decides on; backtesting.py too
            slow=rolling_mean(close, SLOW),
            **{c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        )
        rows_a, checks_a, event = part_a(frame, python, npz, max(1, args.repeat))
        rows_b, checks_b = part_b(frame, python, npz, args.combos, event, max(1, args.repeat))
    rows += rows_a + rows_b
    checks += checks_a + checks_b
    return report(rows, checks, n)


def part_a(
    frame, python: Path, npz: Path, repeat: int
) -> tuple[list[Row], list[tuple[str, bool, str]], object]:
    """Event-driven runner against backtesting.py: ``repeat`` rounds of one run each, side by
    side, so a slow spell of the machine hits both; the best run of each side is compared, in
    CPU seconds (steady on a loaded machine; wall seconds printed beside them)."""
    n = len(frame)
    runs, cpus, peer_runs, peer_cpus = [], [], [], []
    for k in range(repeat):
        print(f"(a) round {k + 1}/{repeat}: ours, then backtesting.py ...", flush=True)
        ours, seconds, cpu = event_driven(frame)
        runs.append(seconds)
        cpus.append(cpu)
        peer = run_peer(python, "backtesting", str(npz), str(FAST), str(SLOW), "1", str(FRACTION))
        peer_runs += peer["runs"]
        peer_cpus.append(peer["cpu"])
    print("(a) event-driven runner, every bar ...", flush=True)
    full, _, full_cpu = event_driven(frame, sparse=False)
    ours_trades = len(ours.closed_trades)
    ours_equity, peer_equity = ours.final_equity, Decimal(repr(peer["final_equity"]))
    parted = first_difference(trade_list(ours, frame), peer["trade_list"])
    note = f"backtesting.py {peer['version']}; {runs_note(cpus, peer_cpus, (runs, peer_runs))}"
    rows = [
        Row(
            "event-driven vs backtesting.py (CPU)",
            n / min(cpus),
            n / min(peer_cpus),
            "bars/s",
            5.0,
            note,
        ),
        Row(
            "  every bar (sparse=False)",
            n / full_cpu,
            n / min(peer_cpus),
            "bars/s",
            0.0,
            "informational",
        ),
    ]
    checks = [
        (
            "same closed trades",
            not parted,
            f"ours {ours_trades}, backtesting.py {peer['trades']}"
            + (f"; first difference: {parted}" if parted else ", each the same"),
        ),
        (
            "same final equity to the cent",
            abs(ours_equity - peer_equity) < Decimal("0.005"),
            f"ours {ours_equity:,.2f}, backtesting.py {peer_equity:,.2f} USD (capital {CASH:,})",
        ),
        (
            "sparse == every-bar replay",
            full.fills == ours.fills and full.final == ours.final,
            f"{len(full.fills)} fills each, final equity {full.final_equity} both",
        ),
    ]
    return rows, checks, ours


def part_b(
    frame, python: Path, npz: Path, n_combos: int, event, repeat: int
) -> tuple[list[Row], list[tuple[str, bool, str]]]:
    """Vectorised path against vectorbt: one run (best of ``repeat`` warm runs on both sides)
    and a parameter sweep."""
    n = len(frame)
    print("(b) vectorised single run ...", flush=True)
    singles = [
        timed(
            lambda: run_vectorised(
                "sma_cross",
                prepare_bars(frame),
                {"fast": FAST, "slow": SLOW, "fraction": FRACTION},
                CONFIG,
                with_metrics=False,  # the same scope as vectorbt's timing: trades and final value
            )
        )
        for _ in range(repeat)
    ]
    single, seconds = singles[-1][0], min(t for _, t in singles)  # best of ``repeat``, as vectorbt
    peer = run_peer(python, "vectorbt", str(npz), str(FAST), str(SLOW), str(repeat), str(FRACTION))
    fast, slow = combos(n_combos)
    sets = [{"fast": f, "slow": s, "fraction": FRACTION} for f in fast for s in slow]
    print(f"(b) vectorised sweep of {len(sets)} combinations ...", flush=True)
    table, sweep_seconds = timed(
        lambda: sweep("sma_cross", prepare_bars(frame), sets, CONFIG, metrics=False)
    )
    peer_sweep = run_peer(
        python, "vectorbt-sweep", str(npz), json.dumps(fast), json.dumps(slow), str(FRACTION)
    )
    note = (
        f"vectorbt {peer['version']}: cold {peer['seconds_cold']:.2f} s, "
        f"+trade records {peer['seconds_with_trades']:.2f} s"
    )
    sweep_note = (
        f"vectorbt cold {peer_sweep['seconds_cold']:.2f} s; {len(sets) * n / 1e6:.0f}M bar-runs"
    )
    rows = [
        Row("vectorised single run (s)", seconds, peer["seconds"], "s", 1.0, note),
        Row(
            f"sweep of {len(sets)} combos (s)",
            sweep_seconds,
            peer_sweep["seconds"],
            "s",
            1.0,
            sweep_note,
        ),
    ]
    same_entries = [t.entry_ts for t in event.trades] == [
        single.timestamps(t.entry_index) for t in single.trades
    ]
    # Floats against exact Decimals: compare in units of the starting capital.
    diff = abs(single.final_equity - float(event.final_equity)) / float(CASH)
    checks = [
        (
            "vectorised == event-driven",
            same_entries and single.n_closed == len(event.closed_trades) and diff < 1e-9,
            f"{single.n_closed} vs {len(event.closed_trades)} trades, "
            f"same entries: {same_entries}, final equity diff {diff:.1e} of the capital",
        ),
        (
            "vectorbt (informational)",
            True,
            f"{peer['trades']} trades, final {peer['final_equity']:,.2f} USD (it sizes 2 % of "
            "its cash at the fill price, not the signal's close, with no lot rounding, and counts "
            "the open trade)",
        ),
        ("sweep rows", len(table) == len(sets), f"{len(table)} of {len(sets)}"),
    ]
    return rows, checks


def report(rows: list[Row], checks: list[tuple[str, bool, str]], n: int) -> int:
    """Print the table and the verdicts; return the exit code."""
    print()
    print(f"{'benchmark':36} {'ours':>14} {'peer':>14} {'ratio':>8} {'target':>8}  result")
    for r in rows:
        fmt = "{:>14,.0f}" if r.unit == "bars/s" else "{:>14.3f}"
        print(
            f"{r.name:36} {fmt.format(r.ours)} {fmt.format(r.peer)} {r.ratio:>7.2f}x "
            f"{'>=' + format(r.target, 'g') + 'x' if r.target else '-':>8}  "
            f"{('PASS' if r.passed else 'FAIL') if r.target else 'info'}  {r.note}"
        )
    print()
    for name, ok, detail in checks:
        print(f"{name:36} {'PASS' if ok else 'FAIL'}  {detail}")
    failed = [r.name for r in rows if not r.passed] + [c[0] for c in checks if not c[1]]
    print(f"\n{n:,} bars: {'all targets met' if not failed else 'missed: ' + ', '.join(failed)}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
