"""The market-data engine is pure Python: no Django, and a light package import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
import marketdata.engine
after_package = sorted(m for m in ("numpy", "pandas") if m in sys.modules)
import marketdata.engine.events, marketdata.engine.quality, marketdata.engine.aggregator
after_hot_path = sorted(m for m in ("numpy", "pandas") if m in sys.modules)
import marketdata.engine.constants, marketdata.engine.simulator, marketdata.engine.history
print(json.dumps({
    "package": after_package,
    "hot_path": after_hot_path,
    "django": sorted(m for m in sys.modules if m == "django" or m.startswith("django.")),
}))
"""


def test_engine_imports_without_django_and_stays_light() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result == {"package": [], "hot_path": [], "django": []}
