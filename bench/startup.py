"""Start-up time of the command line: ``manage.py help`` and every command's ``--help``.

    .venv/bin/python bench/startup.py [--runs 5] [--only backtest,train]

Each figure is the median wall time of ``--runs`` fresh processes (the first, which warms the
OS file cache, is discarded), printed beside two references measured the same way in the same
run: ``python -c pass`` (the interpreter alone) and ``import django; django.setup()`` with the
project's settings (every app and model loaded: the floor any command pays). The ratio column is
each command over the django.setup() floor. Beside the wall seconds, the CPU seconds (user +
system, median) each process used: on a busy machine the wall clock also counts the time other
processes held the CPU, the CPU seconds do not. Target: every ``--help`` under 0.6 s (wall) on a
quiet machine; on a shared one, compare the ratios and the CPU seconds. What each command
imports is checked without timing by tests/rrr_site/test_commands_cli.py.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.6
SETUP = (
    "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'rrr_site.settings'); "
    "import django; django.setup()"
)
LIST_COMMANDS = (
    SETUP + "; from django.core.management import get_commands; "
    "print(' '.join(sorted(n for n, app in get_commands().items() "
    "if not app.startswith('django') and app not in ('rest_framework', 'django_q', "
    "'channels', 'daphne', 'drf_spectacular', 'django_prometheus', 'django_filters'))))"
)


def timed(argv: list[str], runs: int) -> tuple[float, float]:
    """Return the median wall and CPU seconds of ``runs`` fresh processes running ``argv``."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="")  # the .pyc cache is part of start-up
    subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=True)  # warm the cache
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def project_commands() -> list[str]:
    """Return the names of the project's own management commands."""
    done = subprocess.run(
        [sys.executable, "-c", LIST_COMMANDS], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure")
    parser.add_argument("--only", help="comma-separated command names (default: all of ours)")
    args = parser.parse_args()
    python, manage = sys.executable, str(ROOT / "manage.py")
    commands = args.only.split(",") if args.only else project_commands()
    rows: list[tuple[str, tuple[float, float]]] = []
    show = sys.stderr.isatty()
    steps = [
        ("python -c pass (reference)", [python, "-c", "pass"]),
        ("django.setup() (reference)", [python, "-c", SETUP]),
        ("manage.py help", [python, manage, "help"]),
        *((f"manage.py {name} --help", [python, manage, name, "--help"]) for name in commands),
    ]
    for k, (label, argv) in enumerate(steps, 1):
        if show:
            print(f"[{k}/{len(steps)}] {label} ...", file=sys.stderr, flush=True)
        rows.append((label, timed(argv, max(1, args.runs))))
    floor = rows[1][1][0]
    load = os.getloadavg()[0]
    print(f"\nmedian of {args.runs} fresh processes each; ratio = time / django.setup(); "
          f"load average {load:.2f}")  # fmt: skip
    print(f"{'command':44} {'seconds':>8} {'ratio':>7} {'CPU s':>7}  target {TARGET_SECONDS} s")
    misses = []
    for label, (seconds, cpu) in rows:
        judged = label.endswith("--help")
        verdict = ("PASS" if seconds < TARGET_SECONDS else "MISS") if judged else "-"
        if verdict == "MISS":
            misses.append(label)
        print(f"{label:44} {seconds:>8.3f} {seconds / floor:>6.2f}x {cpu:>7.3f}  {verdict}")
    print(
        f"\n{len(rows) - 3 - len(misses)} of {len(rows) - 3} --help under {TARGET_SECONDS} s"
        + (f"; over: {', '.join(misses)}" if misses else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
