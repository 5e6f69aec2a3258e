"""The research engine and the pairs strategy import without Django settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_research_engine_imports_without_django_settings():
    code = (
        "import sys, research.engine.statarb, research.engine.microstructure, "
        "research.engine.patterns, research.engine.hypothesis, research.engine.studies, "
        "research.engine.report, research.strategies\n"
        "assert 'django.conf' not in sys.modules or not __import__('django.conf').conf.settings"
        ".configured\n"
        "from trading.engine.strategies import available_strategies\n"
        "assert 'pairs' in available_strategies()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_listing_strategies_always_includes_pairs():
    code = "from trading.engine.strategies import STRATEGIES; print(sorted(STRATEGIES))"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "'pairs'" in done.stdout, done.stderr
