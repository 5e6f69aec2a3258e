"""Batched Prometheus series: the hot path counts in plain Python, a publish pushes the growth.

prometheus-client's ``inc``/``observe`` take a lock per call (~0.4-0.7 us; a ``.labels()``
lookup ~0.8 us), which the engine's per-event hooks paid on every tick. Here the one thread that
counts (the engine's loop) adds to ints in a dict, or appends a histogram's raw observations to
a deque, and ``publish`` adds what grew since the last publish to the real series (binning the
observations). A publish runs

- at every collect of the default registry (a scrape of ``/metrics`` or of
  ``runtrader --metrics-port``, ``REGISTRY.get_sample_value``): the ``_PublishOnCollect``
  collector is registered before any RRR series, so the series collected after it are current;
- on the engine's flush (every 0.2 s) and ``ingest``'s sync, for ``PROMETHEUS_MULTIPROC_DIR``
  where the exporter reads the files, possibly from another process;
- at exit (``atexit``). A batch whose owner was collected is published once more and dropped.

Thread safety without a lock on the hot path: only the counting thread writes the counts, only
a publish (serialised by ``_PUBLISH_LOCK``) writes what was published, a publish reads the
counts through one atomic ``dict.copy()``, and a deque's append and popleft are atomic.
Histograms keep exact bucket counts (each observation is binned as prometheus-client does: the
first bound >= it) and the exact sum (grown by each value in turn, the floats ``observe`` would
add). Between publishes (0.2 s in the engine) a histogram holds one item per observation.
Counters that the engine already keeps (its event count) are read at publish (``TotalBatch``).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable

from prometheus_client import REGISTRY

_PUBLISH_LOCK = threading.Lock()
_BATCHES: set = set()  # every batch not yet dropped
_RETIRED: list = []  # batches whose owner was collected: published once more, then dropped


def metrics_publish() -> None:
    """Push every batched count of this process into its prometheus-client series."""
    with _PUBLISH_LOCK:
        dead = []
        while _RETIRED:  # taken first: a batch retired during the publish waits for the next
            dead.append(_RETIRED.pop())
        for batch in list(_BATCHES):
            batch.publish()
        _BATCHES.difference_update(dead)


def batches_register(owner: object, batches: Iterable) -> None:
    """Publish ``batches`` with the others until ``owner`` is collected, then once more."""
    batches = tuple(batches)
    _BATCHES.update(batches)
    # Only a list append: the collection may run inside a publish, which holds the lock.
    weakref.finalize(owner, _RETIRED.extend, batches).atexit = False


class CounterBatch:
    """One counter's series under fixed leading labels, counted in ``counts``.

    The hot path does ``counts[key] += 1`` (``KeyError``: ``= 1``); ``key`` is the tuple of the
    remaining label values (a bare string for one label, None for none: cheaper to hash).
    """

    __slots__ = ("counts", "_children", "_metric", "_prefix", "_published")

    def __init__(self, metric, *prefix: str) -> None:
        self.counts: dict[Hashable, int] = {}
        self._metric = metric
        self._prefix = prefix
        self._published: dict[Hashable, int] = {}
        self._children: dict[Hashable, object] = {}

    def add(self, key: Hashable, amount: int = 1) -> None:
        """Count ``amount`` for ``key`` (the hottest paths inline this)."""
        counts = self.counts
        counts[key] = counts.get(key, 0) + amount

    def publish(self) -> None:
        """Add what each series grew by since the last publish."""
        published = self._published
        for key, total in self.counts.copy().items():
            grown = total - published.get(key, 0)
            if grown:
                self._child(key).inc(grown)
                published[key] = total

    def _child(self, key: Hashable):
        child = self._children.get(key)
        if child is None:
            values = key if isinstance(key, tuple) else () if key is None else (key,)
            child = self._children[key] = self._metric.labels(*self._prefix, *values)
        return child


class TallyBatch:
    """One counter's series by one more label: the hot path appends the label value to
    ``pending`` (a deque: one C call, no lookup), a publish tallies what was appended.

    ``label`` bounds the series a hostile source can make: it maps a value to the label it is
    counted under (e.g. every unknown symbol to one ``_other``). Values labelled as themselves
    keep their series at hand; the others are labelled again at each publish they appear in,
    so no state grows with them. A value that cannot be hashed is counted as None.
    """

    __slots__ = ("pending", "total", "_by_label", "_children", "_label", "_metric", "_prefix")

    def __init__(
        self, metric, *prefix: str, label: Callable[[Hashable], Hashable] | None = None
    ) -> None:
        self.pending: deque = deque()
        self.total = 0  # values tallied so far (publishers only)
        self._metric = metric
        self._prefix = prefix
        self._label = label
        self._children: dict[Hashable, object] = {}  # value -> its series (labelled as itself)
        self._by_label: dict[Hashable, object] = {}  # label -> series, for the other values

    def publish(self) -> None:
        """Add each value's count since the last publish to its series."""
        pending = self.pending
        count = len(pending)
        if not count:
            return
        popleft = pending.popleft
        values = [popleft() for _ in range(count)]
        try:
            tallied = Counter(values)
        except TypeError:  # an unhashable value (a malformed frame's)
            tallied = Counter(v if isinstance(v, Hashable) else None for v in values)
        children = self._children
        for value, grown in tallied.items():
            child = children.get(value)
            if child is None:
                child = self._series(value)
            child.inc(grown)
        self.total += count

    def _series(self, value: Hashable):
        label = value if self._label is None else self._label(value)
        if label is value:
            child = self._children[value] = self._metric.labels(*self._prefix, value)
            return child
        child = self._by_label.get(label)
        if child is None:
            child = self._by_label[label] = self._metric.labels(*self._prefix, label)
        return child


class TotalBatch:
    """One counter series that follows a running total kept elsewhere (``read()``, e.g. the
    engine's own event count): nothing on the hot path, a publish adds what the total grew by."""

    __slots__ = ("_child", "_published", "_read")

    def __init__(self, metric, *labels: str, read: Callable[[], int]) -> None:
        self._child = metric.labels(*labels) if labels else metric
        self._read = read
        self._published = 0

    def publish(self) -> None:
        """Add what the total grew by since the last publish."""
        total = self._read()
        if total > self._published:
            self._child.inc(total - self._published)
            self._published = total


class HistogramBatch:
    """One histogram series: the hot path appends raw items to ``pending`` (a deque: appends
    and pops are atomic), a publish turns them into values, bins them and adds the growth.

    ``values`` turns a list of queued items into the observed floats (leaving out what is not
    an observation), so conversions (clamping, ``Decimal`` to float) happen at publish, off the
    hot path, in one call per publish.
    """

    __slots__ = ("pending", "_bounds", "_child", "_values")

    def __init__(
        self, metric, *labels: str, values: Callable[[list], Iterable[float]] | None = None
    ) -> None:
        self._child = metric.labels(*labels) if labels else metric
        self._bounds = tuple(self._child._upper_bounds)  # the last is +Inf
        self.pending: deque = deque()
        self._values = values

    def observe(self, item) -> None:
        """Queue ``item`` (the hot paths append to ``pending`` themselves)."""
        self.pending.append(item)

    def publish(self) -> None:
        """Observe what was queued since the last publish."""
        pending = self.pending
        if not pending:
            return
        items = [pending.popleft() for _ in range(len(pending))]  # only a publish pops
        self.add(items if self._values is None else self._values(items))

    def add(self, values: Iterable[float]) -> None:
        """Observe ``values`` as ``Histogram.observe`` one by one would (publishers only).

        Each value counts in the first bucket whose bound is >= it (NaN in none, but in the
        sum); the sum grows by each value in turn, so it is the very float the client's
        ``observe`` calls would have summed.
        """
        bounds = self._bounds
        counts = [0] * len(bounds)
        child = self._child
        total = child._sum.get()
        seen = False
        for value in values:
            seen = True
            total += value
            if value == value:
                counts[bisect_left(bounds, value)] += 1
        if not seen:
            return
        buckets = child._buckets
        for i, count in enumerate(counts):
            if count:
                buckets[i].inc(count)
        child._sum.set(total)  # only publishes write it, one at a time (_PUBLISH_LOCK)


class _PublishOnCollect:
    """A collector with no series of its own: collecting it publishes the batches."""

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        metrics_publish()
        return []


PUBLISH_ON_COLLECT = _PublishOnCollect()
REGISTRY.register(PUBLISH_ON_COLLECT)  # before any RRR series: they are collected after it
atexit.register(metrics_publish)
