"""runtrader keeps the cyclic collector's pauses short: what is loaded at start-up is frozen out of
every collection, and the young generation is larger (``quiet_collector``).

In a subprocess: freezing is process-wide and would change every later test's collections.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
import django
django.setup()
import rrr_site.asgi, trading.runtime  # what runtrader --serve has loaded when it starts
from trading.management.commands.runtrader import GC_YOUNG_OBJECTS, quiet_collector
default = gc.get_threshold()
before = len(gc.get_objects())
restore = quiet_collector()
seen = {"before": before, "walked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
        "threshold": gc.get_threshold(), "young": GC_YOUNG_OBJECTS}
restore()
seen["restored"] = gc.get_freeze_count() == 0 and gc.get_threshold() == default
print(json.dumps(seen))
"""


def test_a_full_collection_no_longer_walks_what_was_loaded_at_start_up(subprocess_env):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] > 50_000  # Django and the apps: what every full collection walked
    assert seen["frozen"] >= seen["before"] - 100 and seen["walked"] < 100
    assert seen["threshold"][0] == seen["young"] == 10_000
    assert seen["restored"]  # a run inside a test process leaves the collector as it was
