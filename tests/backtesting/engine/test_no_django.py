"""The backtesting engine is pure Python: importing it must not pull in Django."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MODULES = [
    "backtesting.engine.errors",
    "backtesting.engine.fills",
    "backtesting.engine.lookahead",
    "backtesting.engine.metrics",
    "backtesting.engine.montecarlo",
    "backtesting.engine.optimize",
    "backtesting.engine.report",
    "backtesting.engine.result",
    "backtesting.engine.runner",
    "backtesting.engine.vectorised",
]


def test_engine_imports_without_django() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        f"import sys; import {', '.join(MODULES)}; "
        "bad = [m for m in sys.modules if m == 'django' or m.startswith('django.')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
