"""The engine process of ``bench/soak.py``: ``manage.py runtrader`` on N simulated symbols.

The simulated market knows five symbols by name; the soak needs fifty. This process registers
``SOAK01-USD`` ... as extra symbol specs (the five defaults' profiles, cycled, at other prices)
in the simulated market's table, then runs the real ``runtrader`` command with its arguments:

    python bench/soak_engine.py N <runtrader arguments...>
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def soak_symbols(n: int) -> list[str]:
    """Return the names of the soak's symbols: the five defaults, then SOAK06-USD ..."""
    from marketdata.engine.constants import DEFAULT_SYMBOLS

    names = [s.symbol for s in DEFAULT_SYMBOLS][:n]
    return names + [f"SOAK{i:02d}-USD" for i in range(len(names) + 1, n + 1)]


def register(n: int) -> list[str]:
    """Add the extra specs to the simulated market's table; return every soak symbol."""
    from marketdata.engine.constants import DEFAULT_SYMBOLS, DEFAULT_SYMBOLS_BY_NAME

    names = soak_symbols(n)
    for i, name in enumerate(names):
        if name not in DEFAULT_SYMBOLS_BY_NAME:
            base = DEFAULT_SYMBOLS[i % len(DEFAULT_SYMBOLS)]
            DEFAULT_SYMBOLS_BY_NAME[name] = dataclasses.replace(
                base, symbol=name, base_asset=name.split("-")[0],
                base_price=base.base_price * (1 + 0.01 * i),
            )
    return names


def kind_of(obj: object) -> str:
    """Return an object's type as module.qualname (two classes named ``Order`` differ)."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def referrers(obj: object, skip: list, depth: int = 5) -> str:
    """Return a chain of what holds ``obj`` (first referrer each step), skipping ``skip``."""
    import gc

    chain = []
    ignored = {id(skip), *(id(x) for x in skip)}
    for _ in range(depth):
        refs = [r for r in gc.get_referrers(obj)
                if id(r) not in ignored and type(r).__name__ != "frame"]
        if not refs:
            break
        obj = refs[0]
        size = f"[{len(obj)}]" if isinstance(obj, dict | list | set | tuple) else ""
        chain.append(kind_of(obj) + size)
    return " <- ".join(chain)


def query_logs(objects: list) -> str:
    """Return what Django's query logs hold (DEBUG on: the last 9,000 queries a connection)."""
    from collections import deque

    from django.db.backends.base.base import BaseDatabaseWrapper

    logs = [
        o for o in objects
        if type(o) is deque and o.maxlen == BaseDatabaseWrapper.queries_limit and o
    ]
    entries = sum(len(log) for log in logs)
    chars = sum(len(q.get("sql") or "") for log in logs for q in list(log))
    return f"query logs: {len(logs)} connections, {entries} queries, {chars / 2**20:.1f} M chars"


class HeapWatch:
    """What the engine's heap holds and how it grew since the first look (``trace_memory``)."""

    def __init__(self, path: str, frames: int) -> None:
        import time
        from collections import Counter

        self.path, self.frames = path, frames
        self.began = time.monotonic()
        self.first: Counter | None = None
        self.snap = None
        self.sizes: dict[int, int] = {}  # id of each big container -> its length at first sight

    def look(self) -> None:
        """Append one look to the file."""
        import gc
        import time
        import tracemalloc
        from collections import Counter

        objects = gc.get_objects()
        kinds = Counter(kind_of(o) for o in objects)
        with open(self.path, "a") as out:
            out.write(f"\n===== t={time.monotonic() - self.began:.0f}s {self._memory()}, ")
            out.write(f"{query_logs(objects)}\n")
            if self.first is None:
                self.first = kinds
                self.snap = tracemalloc.take_snapshot() if self.frames else None
                out.write("objects: " + ", ".join(f"{k}={n}" for k, n in kinds.most_common(30)))
            else:
                self._grown(kinds, objects, out)
        for o in objects:
            if isinstance(o, dict | list | set) and len(o) > 500:
                self.sizes.setdefault(id(o), len(o))

    @staticmethod
    def _memory() -> str:
        """Return RSS and, while tracemalloc runs, what it traces (RSS less it: C and glibc)."""
        import resource
        import tracemalloc

        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * resource.getpagesize() / 2**20
        text = f"rss {rss:.1f} MB"
        if tracemalloc.is_tracing():
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            text += f", traced {traced:.1f} MB, rss - traced {rss - traced:.1f} MB"
        return text

    def _grown(self, kinds, objects: list, out) -> None:
        import tracemalloc
        from collections import Counter

        grown = Counter(kinds)
        grown.subtract(self.first)
        out.write("objects grown: " + ", ".join(f"{k}{n:+d}" for k, n in grown.most_common(30)))
        out.write("\n")
        # Strings, numbers and Decimals are not tracked by gc: a set or dict of them that grows
        # shows in its length only.
        growth = sorted(
            ((len(o) - self.sizes[id(o)], o) for o in objects
             if isinstance(o, dict | list | set) and self.sizes.get(id(o), len(o)) < len(o)),
            key=lambda g: -g[0],
        )
        for n, o in growth[:8]:
            out.write(f"  container +{n} (now {len(o)}) {kind_of(o)}: "
                      f"{referrers(o, [objects, growth, *growth])}\n")
        if self.frames:
            for stat in tracemalloc.take_snapshot().compare_to(self.snap, "lineno")[:30]:
                out.write(f"+{stat.size_diff / 2**20:.2f} MB ({stat.count_diff:+d})\n")
                out.write("\n".join("    " + line for line in stat.traceback.format()) + "\n")


def trace_memory(path: str, every: float) -> None:
    """Append what the engine's heap holds (and how it grew since the first look) to ``path``.

    A daemon thread, started when ``SOAK_TRACEMALLOC`` names a file, ``SOAK_TRACEMALLOC_EVERY``
    seconds apart (60 by default): live objects counted by type and the containers that grew
    (with what holds them), which is cheap; with ``SOAK_TRACEMALLOC_FRAMES`` > 0 also
    tracemalloc's top 30 growths by line (it slows a loaded engine down several times). What
    grows between looks is what a soak's RSS slope is made of.
    """
    import threading
    import time
    import tracemalloc

    frames = int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "0"))
    if frames:
        tracemalloc.start(frames)
    watch = HeapWatch(path, frames)

    def run() -> None:
        while True:
            time.sleep(every)
            watch.look()

    threading.Thread(target=run, name="soak-heap-watch", daemon=True).start()


def trace_gc(path: str) -> None:
    """Count the cyclic garbage collector's pauses per generation; write them to ``path`` at exit.

    A full collection walks every tracked object of the heap while the event loop (the engine,
    the hub, the web server) stands still: what a long-running engine's latency tails are made
    of besides its own work.
    """
    import atexit
    import gc
    import time

    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    began = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - began[0])

    def write() -> None:
        with open(path, "w") as out:
            for generation, times in pauses.items():
                if times:
                    out.write(
                        f"gen{generation}: {len(times)} collections, total {sum(times):.3f} s, "
                        f"max {1000 * max(times):.1f} ms, tracked objects now "
                        f"{len(gc.get_objects())}\n"
                    )

    gc.callbacks.append(callback)
    atexit.register(write)


def main() -> None:
    """Register the symbols, store their rows, run runtrader with the rest of argv."""
    if os.environ.get("SOAK_GC_LOG"):
        trace_gc(os.environ["SOAK_GC_LOG"])
    if os.environ.get("SOAK_TRACEMALLOC"):
        every = float(os.environ.get("SOAK_TRACEMALLOC_EVERY", "60"))
        trace_memory(os.environ["SOAK_TRACEMALLOC"], every)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from marketdata.services import symbols_ensure

    names = register(int(sys.argv[1]))
    symbols_ensure(names)
    call_command("runtrader", *sys.argv[2:], "--symbols", ",".join(names))


if __name__ == "__main__":
    main()
