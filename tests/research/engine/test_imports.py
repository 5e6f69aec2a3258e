"""The research engine and the pairs strategy import without Django settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CODE = """
from trading.engine.strategies import available_strategies
assert "pairs" in available_strategies(), available_strategies()
import research.engine.hypothesis, research.engine.microstructure, research.engine.patterns
import research.engine.report, research.engine.statarb, research.engine.studies
from django.conf import settings
assert not settings.configured
"""


def test_research_engine_imports_without_django_settings_and_pairs_is_listed():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
