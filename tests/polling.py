"""Poll, don't sleep: wait for a condition a real process or database will reach."""

from __future__ import annotations

import time


def wait_for(
    predicate, timeout: float = 60.0, what: str = "the condition", interval: float = 0.05
) -> None:
    """Return once ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
