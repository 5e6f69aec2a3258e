"""Users' strategies next to backtesting.py: signal style, event style, event style with history.

    .venv/bin/python bench/user_strategies.py [--bars 1000000] [--markets walk,sim]
        [--kinds signal,event,history] [--repeat 1] [--profile]

On ``--bars`` one-minute bars of a plain random walk and of the simulated market, the long-only
SMA(10/30) state strategy (long while the 10-bar mean is above the 30-bar one) written three ways
as a user would (files in a temporary ``STRATEGY_PATHS`` folder, loaded by the same loader as
``--strategy``):

- ``signal``: a ``SignalStrategy`` (pandas rolling means; compiled to the decision-table path);
- ``event``: an ``on_bar`` strategy keeping running sums;
- ``history``: an ``on_bar`` strategy reading ``ctx.history(symbol, 30)`` each bar.

Same trades, honestly compared:

- sizing: every entry buys ``FRACTION`` (2 %) of the equity at the signal bar's close in whole
  satoshis, floored, on both sides (RRR's ``ctx.size_for``; backtesting.py gets the same rule in
  exact Decimal, ``backtest_peer.units_for``), 0.1 % commission rounded as RRR's venue rounds it,
  fills at the next bar's open. The account keeps about half its capital after ~19,000 round
  trips, so trades and final equities are compared where they mean something (all-in sizing
  ended at 7e-5 USD of 100,000, where dust decided entries);
- decisions: the two averages are floats, and computed differently they can order an exact tie
  (prices are whole cents) differently. backtesting.py therefore reads the averages each of our
  strategies computes (pandas rolling means, running sums, sums over the history), computed
  outside its timing: that flatters backtesting.py by its own indicator time (< 1 %);
- checks printed per line: the trade count, every closed trade (entry bar, exit bar, satoshis)
  and the final equity to the cent, on both sides.

Timing: each side runs in a fresh process, one run each (``--repeat`` N: N fresh processes per
side, interleaved, best of each), timed from the bars DataFrame to the result (ours:
``run_backtest`` including ``prepare_bars``; backtesting.py: ``FractionalBacktest`` + ``run``).
The ratio is of CPU seconds (``time.process_time``), steady on a loaded machine; wall seconds are
printed beside them (on a quiet machine the two agree). Targets: signal 5x, event 2x, history 1x.

Where the time goes: ``--profile`` prints our side's phases (CPU seconds) and its top functions
by own time (cProfile). ``--callgrind`` counts the instructions of both runs under valgrind
(each side warmed on its first 3,000 bars, then only the measured run instrumented): steadier
than seconds on a loaded machine, though blind to cache misses, so a ratio of instructions runs
higher than the ratio of seconds. ~50x slower: use it with ``--bars 100000``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading.strategy_templates import SIGNAL  # noqa: E402  (after ROOT joins the path)

FAST, SLOW = 10, 30
TARGETS = {"signal": 5.0, "event": 2.0, "history": 1.0}
FRACTION = "0.02"  # of equity per entry, on both sides
CASH = 100_000
SATOSHI = "0.00000001"

# signal: the template ``manage.py strategy new UserSignal --style signal`` writes, as it is.
SOURCES = {
    "signal": SIGNAL.format(name="UserSignal"),
    "event": """
from collections import deque
from decimal import Decimal

from trading.engine.strategy import Strategy


class UserEvent(Strategy):
    default_params = {"fast": 10, "slow": 30, "fraction": 0.1, "lot": "0.00000001"}

    def on_start(self, ctx):
        self.closes = deque(maxlen=self.params["slow"])
        self.sf = self.ss = 0.0
        self.lot = Decimal(self.params["lot"])

    def on_bar(self, bar, ctx):
        fast, slow, closes, close = self.params["fast"], self.params["slow"], self.closes, bar.close
        if len(closes) == slow:
            self.ss -= closes[0]
        if len(closes) >= fast:
            self.sf -= closes[-fast]
        closes.append(close)
        self.sf += close
        self.ss += close
        if len(closes) < slow:
            return
        f, s = self.sf / fast, self.ss / slow
        held = ctx.position(bar.symbol)
        if f > s and not held:
            ctx.buy(bar.symbol, ctx.size_for(bar.symbol, self.params["fraction"], self.lot, close))
        elif f < s and held:
            ctx.sell(bar.symbol, held)
""",
    "history": """
from decimal import Decimal

from trading.engine.strategy import Strategy


class UserHistory(Strategy):
    default_params = {"fast": 10, "slow": 30, "fraction": 0.1, "lot": "0.00000001"}

    def on_start(self, ctx):
        self.lot = Decimal(self.params["lot"])

    def on_bar(self, bar, ctx):
        fast, slow = self.params["fast"], self.params["slow"]
        closes = ctx.history(bar.symbol, slow)
        if len(closes) < slow:
            return
        f, s = sum(closes[-fast:]) / fast, sum(closes) / slow
        held = ctx.position(bar.symbol)
        if f > s and not held:
            ctx.buy(bar.symbol, ctx.size_for(bar.symbol, self.params["fraction"], self.lot,
                                             bar.close))
        elif f < s and held:
            ctx.sell(bar.symbol, held)
""",
}
CLASSES = {"signal": "UserSignal", "event": "UserEvent", "history": "UserHistory"}


def make_frame(market: str, n: int):
    """Return ``n`` one-minute bars: a seeded random walk, or the simulated market (seed 42)."""
    import numpy as np
    import pandas as pd

    start = datetime(2024, 1, 1, tzinfo=UTC)
    if market == "sim":
        from marketdata.engine.simulator import SimulatedMarket

        return SimulatedMarket(["BTC-USD"], seed=42).history_bars(
            "BTC-USD", "1m", start, start + timedelta(minutes=n)
        )
    rng = np.random.default_rng(7)
    close = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n))), 2)
    open_ = np.round(np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 1e-4, n)), 2)
    high = np.maximum(open_, close) + 1.0
    low = np.minimum(open_, close) - 1.0
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    return pd.DataFrame(
        {
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": np.full(n, 5.0),
        }
    )


# ----------------------------------------------------------------- the averages of each style


def averages(kind: str, close):
    """Return the (fast, slow) means exactly as strategy ``kind`` computes them, per bar
    (NaN before it has ``SLOW`` closes): what backtesting.py decides on."""
    import numpy as np
    import pandas as pd

    if kind == "signal":
        series = pd.Series(close)
        fast = series.rolling(FAST).mean().to_numpy()
        slow = series.rolling(SLOW).mean().to_numpy()
        return fast, slow
    values = close.tolist()
    fast, slow = np.full(len(values), np.nan), np.full(len(values), np.nan)
    if kind == "event":  # UserEvent.on_bar's running sums, operation for operation
        sf = ss = 0.0
        for i, c in enumerate(values):
            if i >= SLOW:
                ss -= values[i - SLOW]
            if i >= FAST:
                sf -= values[i - FAST]
            sf += c
            ss += c
            if i >= SLOW - 1:
                fast[i], slow[i] = sf / FAST, ss / SLOW
        return fast, slow
    for i in range(SLOW - 1, len(values)):  # UserHistory.on_bar: sums over the window
        window = values[i - SLOW + 1 : i + 1]
        fast[i], slow[i] = sum(window[-FAST:]) / FAST, sum(window) / SLOW
    return fast, slow


# ----------------------------------------------------------------- our side (a fresh process)


def ours(kind: str, npz: str, folder: str, profile: bool = False) -> dict:
    """Run one user strategy on the bars (this process is fresh); return times and trades."""
    from decimal import Decimal

    import numpy as np
    import pandas as pd

    from backtesting.engine.runner import BacktestConfig, run_backtest
    from trading.engine import user_strategies
    from trading.engine.strategies import create_strategy

    raw = np.load(npz)
    frame = pd.DataFrame({c: raw[c] for c in ("open", "high", "low", "close", "volume")})
    frame.insert(0, "ts", pd.to_datetime(raw["ts"], utc=True))
    frame.insert(1, "symbol", "BTC-USD")
    user_strategies.set_strategy_paths([folder])
    config = BacktestConfig(
        initial_cash=Decimal(CASH), taker_fee_bps=Decimal(10), fill_model="next_open"
    )
    strategy = create_strategy(CLASSES[kind], fraction=Decimal(FRACTION), lot=Decimal(SATOSHI))
    visits = _visit_counter()
    counted = bool(os.environ.get("BENCH_CALLGRIND"))
    if counted:  # warm (imports done on first use), then count the measured run alone
        warm = create_strategy(CLASSES[kind], fraction=Decimal(FRACTION), lot=Decimal(SATOSHI))
        run_backtest(warm, frame.iloc[:3000], config)
        _callgrind("on")
    phases = _phase_clock() if profile else None
    profiler = _profiler() if profile else None
    cpu, began = time.process_time(), time.perf_counter()
    result = run_backtest(strategy, frame, config)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    if counted:
        _callgrind("off")
    out = {
        "seconds": wall,
        "cpu": cpu,
        "trades": len(result.closed_trades),
        "final_equity": str(result.final_equity),
        "trade_list": _trade_list(result, raw["ts"]),
        "bars": len(frame),
        "visits": visits[-1] if visits else None,  # sparse replay: bars visited
    }
    if profile:
        profiler.disable()
        out["phases"] = dict(phases)
        out["top"] = _top(profiler)
    return out


def _visit_counter() -> list[int]:
    """Return a list that gets each sparse replay's visit count (one call a run: uncounted)."""
    import backtesting.engine.sparse as sparse

    counts: list[int] = []
    run = sparse.SparseReplay.run

    def counted(self, *args, **kwargs):
        try:
            return run(self, *args, **kwargs)
        finally:
            counts.append(self.visits)

    sparse.SparseReplay.run = counted
    return counts


def _callgrind(state: str) -> None:
    subprocess.run(
        ["callgrind_control", f"--instr={state}", str(os.getpid())],
        capture_output=True,
        check=False,
    )


def _trade_list(result, ts) -> list[list[int]]:
    """Return each closed trade as [entry bar, exit bar, satoshis] (backtesting.py's form)."""
    import numpy as np
    import pandas as pd

    from trading.engine.money import to_decimal

    def bar(when) -> int:
        return int(np.searchsorted(ts, pd.Timestamp(when).value))

    unit = to_decimal(SATOSHI)
    return [[bar(t.entry_ts), bar(t.exit_ts), int(t.quantity / unit)] for t in result.closed_trades]


def _phase_clock() -> dict[str, float]:
    """Time the run's phases in CPU seconds (wrapping the runner's steps; --profile only)."""
    from collections import defaultdict

    import backtesting.engine.runner as runner
    import backtesting.engine.sparse as sparse

    spent: dict[str, float] = defaultdict(float)
    steps = [
        (runner, "prepare_bars", "prepare bars"),
        (runner, "build_plan", "plan (signals)"),
        (runner._Session, "drive_sparse", "sparse replay"),
        (runner._Session, "drive_bars", "bar replay"),
        (sparse.SparseReplay, "finish", "equity by row"),
        (runner._Session, "finish", "result"),
    ]
    for owner, name, label in steps:
        if not hasattr(owner, name):
            continue

        def timed(*args, _fn=getattr(owner, name), _label=label, **kwargs):
            began = time.process_time()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_label] += time.process_time() - began

        setattr(owner, name, timed)
    return spent


def _profiler():
    import cProfile

    profiler = cProfile.Profile(time.process_time)  # CPU time, as the figures
    profiler.enable()
    return profiler


def _top(profiler, n: int = 12) -> list[str]:
    import io
    import pstats

    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(n)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return lines[start : start + n + 1]


# ----------------------------------------------------------------- both sides, compared


def run_ours(kind: str, npz: Path, folder: str, profile: bool) -> dict:
    """Run our side in a fresh process."""
    side = [sys.executable, __file__, "--side", f"{kind},{npz},{folder}"]
    proc = subprocess.run(
        side + (["--profile"] if profile else []), capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null"]


def instructions(command: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Return the instructions the measured run of ``command`` executed (under callgrind) and
    what it printed."""
    env = {**(env or os.environ), "BENCH_CALLGRIND": "1"}
    proc = subprocess.run(VALGRIND + command, capture_output=True, text=True, cwd=ROOT, env=env)
    found = re.findall(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"callgrind run failed:\n{proc.stderr[-3000:]}")
    return int(found[-1].replace(",", "")), proc.stdout


def count_both(python: Path, kind: str, npz: Path, folder: str) -> tuple[int, int, dict]:
    """Return the instructions of our run and of backtesting.py's on the same bars, and our
    side's report of the counted run (bars, visits)."""
    ours, printed = instructions([sys.executable, __file__, "--side", f"{kind},{npz},{folder}"])
    from bench.backtest_peers import PEER

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    args = ["backtesting", str(npz), str(FAST), str(SLOW), "1", FRACTION]
    theirs, _ = instructions([str(python), str(PEER), *args], env)
    return ours, theirs, json.loads(printed.strip().splitlines()[-1])


def per_unit(total: int, side: dict) -> str:
    """Return our instructions per bar and, for a sparse replay, per visited bar."""
    text = f"ours {total / side['bars']:,.0f} a bar"
    if side.get("visits"):
        visits = side["visits"]
        text += f", {total / visits:,.0f} a visit ({visits:,} visits; the whole run's)"
    return text


def first_difference(mine: list, theirs: list) -> str:
    """Return where two trade lists part (empty if they do not)."""
    for k, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if a != b:
            return f"trade {k}: ours {a}, backtesting.py {b} (entry bar, exit bar, satoshis)"
    if len(mine) != len(theirs):
        return f"ours {len(mine)} closed trades, backtesting.py {len(theirs)}"
    return ""


def compare(market: str, kind: str, n: int, mine: dict, peer: dict) -> tuple[bool, str]:
    """Return (passed, the printed line) for one style on one market."""
    from decimal import Decimal

    ratio = peer["cpu"] / mine["cpu"]
    ours_equity, peer_equity = Decimal(mine["final_equity"]), Decimal(repr(peer["final_equity"]))
    cents = abs(ours_equity - peer_equity) < Decimal("0.005")
    parted = first_difference(mine["trade_list"], peer["trade_list"])
    fast_enough = ratio >= TARGETS[kind]
    verdict = "ok" if fast_enough else "BELOW TARGET"
    if parted:
        verdict += f", DIFFERENT TRADES: {parted}"
    if not cents:
        verdict += ", DIFFERENT FINAL EQUITY"
    line = (
        f"{market:<5} {kind:<8} ours {n / mine['cpu']:>11,.0f} bars/s  "
        f"backtesting.py {n / peer['cpu']:>9,.0f} bars/s  ratio {ratio:5.2f}x "
        f"(target {TARGETS[kind]:.0f}x)  trades {mine['trades']} vs {peer['trades']}  "
        f"final equity {ours_equity:,.2f} vs {peer_equity:,.2f} USD  "
        f"[cpu {mine['cpu']:.2f} s vs {peer['cpu']:.2f} s; wall {mine['seconds']:.2f} s vs "
        f"{peer['seconds']:.2f} s]  {verdict}"
    )
    return fast_enough and not parted and cents, line


def write_bars(frame, kind: str, path: Path) -> None:
    """Save the bars and the averages ``kind`` decides on, for both sides."""
    import numpy as np

    ts = frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    columns = {
        c: frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")
    }
    fast, slow = averages(kind, columns["close"])
    np.savez(path, ts=ts, fast=fast, slow=slow, **columns)


def print_profile(market: str, kind: str, mine: dict) -> None:
    """Print our side's phases and top functions (``--profile``)."""
    total = mine["cpu"]
    print(f"  where our {market}/{kind} time goes (CPU s, under cProfile: {total:.2f} s in all)")
    for name, seconds in mine["phases"].items():
        print(f"    {name:<16} {seconds:8.3f}  {seconds / total:6.1%}")
    for line in mine["top"]:
        print("    " + line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--markets", default="walk,sim")
    parser.add_argument("--kinds", default="signal,event,history")
    parser.add_argument("--repeat", type=int, default=1, help="fresh runs per side, best kept")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print where our time goes (an extra, profiled run)",
    )
    parser.add_argument(
        "--keep", type=Path, help="write the bars and strategies here and keep them"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="also count both runs' instructions under callgrind (steady under load; ~50x "
        "slower: use --bars 100000)",
    )
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: kind,npz,folder
    args = parser.parse_args()
    if args.side:
        kind, npz, folder = args.side.split(",")
        print(json.dumps(ours(kind, npz, folder, args.profile)))
        return 0

    from bench.backtest_peers import peer_python, run_peer

    python = peer_python(ROOT / ".venv-bench", setup=False)
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for name, text in SOURCES.items():
            (tmp / f"{name}.py").write_text(text)
        print(
            f"{args.bars:,} bars, entries of {float(FRACTION):.0%} of equity, 0.1 % "
            f"commission, next-open fills; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for market in args.markets.split(","):
            frame = make_frame(market, args.bars)
            n = len(frame)
            for kind in args.kinds.split(","):
                npz = tmp / f"{market}_{kind}.npz"
                write_bars(frame, kind, npz)
                mine, peer = None, None
                for _ in range(max(1, args.repeat)):
                    m = run_ours(kind, npz, str(tmp), profile=False)
                    p = run_peer(
                        python, "backtesting", str(npz), str(FAST), str(SLOW), "1", FRACTION
                    )
                    mine = m if mine is None or m["cpu"] < mine["cpu"] else mine
                    peer = p if peer is None or p["cpu"] < peer["cpu"] else peer
                passed, line = compare(market, kind, n, mine, peer)
                failed |= not passed
                print(line, flush=True)
                if args.profile:
                    print_profile(market, kind, run_ours(kind, npz, str(tmp), profile=True))
                if args.callgrind:
                    mine_i, peer_i, side = count_both(python, kind, npz, str(tmp))
                    print(
                        f"  instructions (callgrind, warm, the run alone): ours "
                        f"{mine_i / 1e9:.2f} G, backtesting.py {peer_i / 1e9:.2f} G, ratio "
                        f"{peer_i / mine_i:.2f}x (target {TARGETS[kind]:.0f}x); "
                        f"{per_unit(mine_i, side)}",
                        flush=True,
                    )
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
