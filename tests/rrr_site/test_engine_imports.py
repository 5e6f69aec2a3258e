"""Every engine package imports without Django settings and without importing Django."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ["marketdata", "models_ml", "trading", "risk", "backtesting", "research", "monitoring"]
# Adapters are Django-free too (they translate wire formats and never write state).
PURE_PACKAGES = [f"{app}/engine" for app in APPS] + ["marketdata/adapters", "trading/adapters"]


def pure_modules(package: str) -> list[str]:
    """Return the dotted names of every module in a pure package directory."""
    base = ROOT / package
    return [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted(base.rglob("*.py"))
    ]


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_engine_imports_without_django(package):
    modules = pure_modules(package)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not leaked, leaked\n"
        "print('ok', len(sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
