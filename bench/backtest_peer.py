"""Peer side of bench/backtest_peers.py: runs inside .venv-bench, never imports RRR code.

Usage: python backtest_peer.py {backtesting|vectorbt} BARS.npz FAST SLOW [REPEAT [FRACTION]]
       python backtest_peer.py vectorbt-sweep BARS.npz FASTS SLOWS [FRACTION]
       python backtest_peer.py backtesting-csv BARS.csv FAST SLOW REPEAT
Prints one JSON object: the peer's own timings (seconds) and results.

With FRACTION (bench/user_strategies.py, bench/backtest_peers.py), backtesting.py sizes each entry
as RRR's strategies do (``StrategyContext.size_for``): FRACTION of the equity at the signal bar's
close, in whole lots of one satoshi, floored (exact Decimal arithmetic, as RRR's); the report then
lists every closed trade (entry bar, exit bar, size in satoshis) so that the bench compares trades
one by one. Without it, all-in (bench/backtest_e2e.py). vectorbt with FRACTION buys that share of
its cash at the fill price (``size_type="percent"``, no lot rounding), else all-in. When BARS.npz
holds ``fast`` and ``slow`` arrays, the strategy decides on those (the averages as the RRR strategy
under test computes them) instead of its own pandas rolling means. With BENCH_CALLGRIND set (under
``valgrind --tool=callgrind --instr-atstart=no``), a warm-up run on the first bars comes first and
only the measured run is instrumented.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import warnings
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

# The repository root must not shadow the PyPI "backtesting" package with our Django app.
_ROOT = str(Path(__file__).resolve().parents[1])
sys.path[:] = [p for p in sys.path if p not in ("", _ROOT, str(Path(__file__).parent))]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CASH = 100_000.0
COMMISSION = 0.001
UNIT = 1e-8  # FractionalBacktest's default unit (one satoshi): RRR's lot in the bench
FEE_STEP = Decimal("1E-10")
WARM = 3000  # bars of the warm-up run before a counted one (BENCH_CALLGRIND)


def fee_as_rrr_charges(size: float, price: float) -> float:
    """Return the commission as RRR's venue charges it: 0.1 % rounded half-even to 1e-10.

    backtesting.py charges the unrounded product; RRR rounds each fee to the 10 decimals money
    is stored at. On the bench's 1M bars the account ends near dust (10,404 round trips at
    0.2 % each), where ~1e-10 per fill decides whether one satoshi is affordable: with the
    unrounded fee the peer skips two dust entries RRR takes. ``size`` below 1 is
    backtesting.py sizing a relative order (``buy(size=0.9999)``): that estimate stays the
    plain product, as RRR's sizing (``FRACTION``) assumes.
    """
    if abs(size) < 1:
        return abs(size) * price * COMMISSION
    quantity = Decimal(abs(int(size))) * Decimal(repr(UNIT))
    unit_price = Decimal(repr(round(float(price) / UNIT, 8)))  # FractionalBacktest scales prices
    fee = quantity * unit_price * Decimal(repr(COMMISSION))
    return float(fee.quantize(FEE_STEP, rounding=ROUND_HALF_EVEN))


def load(path: str) -> pd.DataFrame:
    """Return the bars as the OHLCV frame both peers take."""
    raw = np.load(path)
    # Naive UTC: a tz-aware index makes vectorbt several times slower.
    index = pd.DatetimeIndex(raw["ts"].astype("datetime64[ns]"))
    cols = {c.capitalize(): raw[c] for c in ("open", "high", "low", "close", "volume")}
    return pd.DataFrame(cols, index=index)


def sma(values: np.ndarray, n: int) -> np.ndarray:
    """Return the simple moving average (pandas rolling mean)."""
    return pd.Series(values).rolling(n).mean().to_numpy()


def warm(values: np.ndarray) -> np.ndarray:
    """Return ``values`` with the NaN before its first number filled (see ``warm_sma``)."""
    out = np.array(values, dtype=float)
    first = int(np.argmin(np.isnan(out)))
    if first >= 1 and not np.isnan(out[first]):
        out[first - 1] = out[first]
    return out


def warm_sma(values: np.ndarray, n: int) -> np.ndarray:
    """Return the SMA with its last warm-up NaN filled.

    backtesting.py first calls ``next()`` one bar after every indicator is defined ("+1 to have
    at least two entries available"); RRR's strategies decide on the first bar with both
    averages. Filling index n − 2 (never read by ``next()``, which first runs at n − 1 and reads
    index n − 1) lets both decide on the same first bar.
    """
    out = sma(values, n).copy()  # pandas may hand back a read-only view
    if out.size >= n >= 2:
        out[n - 2] = out[n - 1]
    return out


def units_for(equity: float, close: float, fraction: Decimal) -> int:
    """Return the satoshis worth ``fraction`` of ``equity`` at ``close``, floored (RRR's
    ``size_for``: ``floor_to_step(equity × fraction / close, lot)`` in Decimal)."""
    budget = Decimal(repr(float(equity))) * fraction
    return int((budget / Decimal(repr(float(close)))) / Decimal(repr(UNIT)))


def run_backtesting(
    data: pd.DataFrame,
    fast: int,
    slow: int,
    repeat: int = 1,
    fraction: Decimal | None = None,
    means: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Time backtesting.py on the long-only SMA state strategy, next-open fills: all-in, or
    ``fraction`` of equity per entry (see the module docstring).

    ``means``: the (fast, slow) averages to decide on, as RRR's strategy under test computes
    them (bench/user_strategies.py), instead of pandas rolling means of the closes.
    ``repeat`` runs: ``seconds`` (wall) and ``cpu`` (process time) are the best, ``runs`` all.
    """
    # The PyPI package, not our app (see the sys.path filter above).
    Strategy = importlib.import_module("backtesting").Strategy  # noqa: N806
    FractionalBacktest = importlib.import_module("backtesting.lib").FractionalBacktest  # noqa: N806
    closes = data["Close"].to_numpy()  # unscaled (FractionalBacktest scales its own copy)

    class SmaCross(Strategy):
        def init(self) -> None:
            if means is not None:
                self.fast = self.I(warm, means[0], name="fast")
                self.slow = self.I(warm, means[1], name="slow")
                return
            self.fast = self.I(warm_sma, self.data.Close, fast)
            self.slow = self.I(warm_sma, self.data.Close, slow)

        def next(self) -> None:
            f, s = self.fast[-1], self.slow[-1]
            if f > s and not self.position:
                if fraction is None:
                    self.buy(size=0.9999)  # all-in, leaving room for the commission
                    return
                units = units_for(self.equity, closes[len(self.data) - 1], fraction)
                if units >= 1:
                    self.buy(size=units)
            elif f < s and self.position:
                self.position.close()

    runs, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = FractionalBacktest(
                data, SmaCross, cash=CASH, commission=fee_as_rrr_charges, fractional_unit=UNIT
            )
            stats = bt.run()
        runs.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    out = {
        "seconds": min(runs),
        "cpu": min(cpus),
        "runs": runs,
        "trades": int(stats["# Trades"]),
        "final_equity": float(stats["Equity Final [$]"]),
        "version": importlib.import_module("backtesting").__version__,
    }
    if fraction is not None:
        trades = stats["_trades"]
        out["trade_list"] = [
            [int(e), int(x), round(float(q) / UNIT)]
            for e, x, q in zip(trades["EntryBar"], trades["ExitBar"], trades["Size"], strict=True)
        ]
    return out


def _vbt_signals(close: pd.Series, fast, slow):
    import vectorbt as vbt

    f = vbt.MA.run(close, fast, short_name="fast").ma
    s = vbt.MA.run(close, slow, short_name="slow").ma
    if isinstance(fast, list):  # every (fast, slow) pair as its own column
        f = np.repeat(f.to_numpy(), len(slow), axis=1)
        s = np.tile(s.to_numpy(), (1, len(fast)))
    else:
        f, s = f.to_numpy(), s.to_numpy()
    entries, exits = f > s, f < s
    # Decide on a close, fill at the next open.
    head = np.zeros((1,) + entries.shape[1:], bool)
    entries = np.concatenate([head, entries[:-1]], axis=0)
    exits = np.concatenate([head, exits[:-1]], axis=0)
    return entries, exits


def run_vectorbt(
    data: pd.DataFrame, fast, slow, warm_runs: int = 1, fraction: float | None = None
) -> dict:
    """Time vectorbt's Portfolio.from_signals; the first call includes numba compilation,
    ``seconds`` is the best of the ``warm_runs`` after it. All-in, or ``fraction`` of the cash
    per entry."""
    import vectorbt as vbt

    close, open_ = data["Close"], data["Open"]
    sizing = {"size": np.inf}
    if fraction is not None:
        # No size_granularity: with it vectorbt floors the exits too and never closes a trade.
        sizing = {"size": fraction, "size_type": "percent"}
    timings, totals = [], []
    for _ in range(1 + max(1, warm_runs)):
        start = time.perf_counter()
        entries, exits = _vbt_signals(close, fast, slow)
        pf = vbt.Portfolio.from_signals(
            close,
            entries,
            exits,
            price=open_,
            fees=COMMISSION,
            init_cash=CASH,
            freq="1min",
            **sizing,
        )
        final = pf.final_value()
        timings.append(time.perf_counter() - start)  # signals + simulation + final value
        trades = pf.trades.count()
        totals.append(time.perf_counter() - start)  # ... + trade records
    single = np.ndim(final) == 0
    return {
        "seconds_cold": timings[0],
        "seconds": min(timings[1:]),
        "seconds_with_trades": min(totals[1:]),
        "trades": int(trades) if single else int(np.sum(trades)),
        "final_equity": float(final) if single else float(np.max(final)),
        "columns": 1 if single else int(np.size(final)),
        "version": vbt.__version__,
    }


def load_csv(path: str) -> pd.DataFrame:
    """Read the bars from CSV (ts,open,high,low,close,volume; ISO UTC times) as both peers take."""
    frame = pd.read_csv(path, index_col="ts", parse_dates=["ts"])
    frame.index = frame.index.tz_convert(None)  # naive UTC, as ``load``
    frame.columns = [c.capitalize() for c in frame.columns]
    return frame


def run_backtesting_csv(path: str, fast: int, slow: int, repeat: int) -> dict:
    """Time backtesting.py reading the bars from CSV and running (bench/backtest_e2e.py)."""
    runs, reads, out = [], [], {}
    for _ in range(repeat):
        began = time.perf_counter()
        data = load_csv(path)
        reads.append(time.perf_counter() - began)
        out = run_backtesting(data, fast, slow)
        runs.append(time.perf_counter() - began)
    best = {"seconds": min(runs), "runs": runs, "read_seconds": min(reads), "bars": len(data)}
    return {**out, **best}


def callgrind(state: str) -> None:
    """Turn callgrind's instrumentation on or off for this process (under valgrind)."""
    subprocess.run(
        ["callgrind_control", f"--instr={state}", str(os.getpid())],
        capture_output=True,
        check=False,
    )


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    if mode == "backtesting-csv":
        print(json.dumps(run_backtesting_csv(path, int(argv[2]), int(argv[3]), int(argv[4]))))
        return
    data = load(path)
    if mode == "backtesting":
        repeat = int(argv[4]) if argv[4:] else 1
        fraction = Decimal(argv[5]) if argv[5:] else None
        raw = np.load(path)
        means = (raw["fast"], raw["slow"]) if "fast" in raw.files else None
        args = (int(argv[2]), int(argv[3]), repeat, fraction)
        if os.environ.get("BENCH_CALLGRIND"):  # warm, then count the run's instructions alone
            head = None if means is None else (means[0][:WARM], means[1][:WARM])
            run_backtesting(data.iloc[:WARM], *args, head)
            callgrind("on")
        out = run_backtesting(data, *args, means)
        if os.environ.get("BENCH_CALLGRIND"):
            callgrind("off")
    elif mode == "vectorbt":
        repeat = int(argv[4]) if argv[4:] else 1
        fraction = float(argv[5]) if argv[5:] else None
        out = run_vectorbt(data, int(argv[2]), int(argv[3]), repeat, fraction)
    elif mode == "vectorbt-sweep":
        fast = json.loads(argv[2])
        slow = json.loads(argv[3])
        out = run_vectorbt(data, fast, slow, fraction=float(argv[4]) if argv[4:] else None)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
