"""runtrader's task worker child: ``manage.py qcluster`` that ends with runtrader, tasks and all.

``python -m trading.worker_child <runtrader pid> [qcluster options]``. runtrader starts it as
the leader of its own process group (the cluster's sentinel, workers and whatever their tasks
start join that group). A thread here watches the parent: once runtrader is gone, even by
SIGKILL, it kills the whole group. A parent-death signal alone reached the cluster's main
process only; the sentinel and a worker in the middle of a task lived on as orphans (one ran a
task 20 minutes later).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

PARENT_POLL = 0.5  # seconds between looks at the parent: how late the cluster ends after it


def watch_parent(parent: int, poll: float = PARENT_POLL) -> None:
    """Kill this process group as soon as ``parent`` is no longer our parent."""
    while os.getppid() == parent:
        time.sleep(poll)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    """Start the watch on ``argv[0]`` (runtrader's pid), then run ``qcluster argv[1:]``."""
    parent = int(argv[0])
    if os.getpgrp() != os.getpid():  # the watch kills its group: never the caller's
        raise SystemExit("trading.worker_child must lead its own process group")
    threading.Thread(target=watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    manage = Path(__file__).resolve().parents[1] / "manage.py"
    sys.argv = [str(manage), "qcluster", *argv[1:]]
    sys.path.insert(0, str(manage.parent))
    import manage as manage_py  # noqa: PLC0415 - the project's entry point, not a package

    manage_py.main()


if __name__ == "__main__":
    main(sys.argv[1:])
