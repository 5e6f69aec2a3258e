"""The django-q2 workers' series (jobs, alert deliveries, VaR, ML accuracy) where Prometheus reads.

Tasks run in qcluster's worker processes, which serve nothing: what they count stayed in their
memory. In prometheus-client's multiprocess mode each process writes its series to files in
``PROMETHEUS_MULTIPROC_DIR`` and one process serves them merged (``MultiProcessCollector``):

- ``manage.py taskworker`` (a deployment's qcluster, one per container or systemd instance) is
  qcluster whose main process serves its workers' files on ``--metrics-port`` /
  ``QCLUSTER_METRICS_PORT`` behind ``/metrics``'s gate (``METRICS_TOKEN`` /
  ``METRICS_ALLOWED_NETWORKS``), with the queue depth read from the broker at each scrape.
- ``runtrader --serve`` (``make run``) starts its qcluster child with its own directory under
  the data folder (emptied at start); runtrader's ``/metrics`` serves its own series and the
  child's in one exposition (``merged_registry``), runtrader itself staying in the cheaper
  single-process mode.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_FILE = re.compile(r"_(\d+)\.db$")

# The directory runtrader's qcluster child writes to (set by ``child_metrics_dir``).
_child_dir: Path | None = None


def stale_files_remove(directory: str | Path, keep_pid: int) -> int:
    """Delete the series files of processes other than ``keep_pid``; return how many.

    Called by a cluster's main process before it forks its workers: any other process's files
    are a previous run's, and their counters would be added to this run's.
    """
    removed = 0
    for path in Path(directory).glob("*.db"):
        match = _PID_FILE.search(path.name)
        if match and int(match.group(1)) != keep_pid:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def child_metrics_dir(data_dir: str | Path, *, wipe: bool) -> Path:
    """Prepare the qcluster child's series directory under ``data_dir``; remember it.

    ``wipe`` empties it (runtrader's start); a restarted child keeps its predecessor's counts.
    """
    global _child_dir
    path = Path(data_dir) / "metrics" / "qcluster"
    if wipe and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    _child_dir = path
    return path


def child_metrics_forget() -> None:
    """Stop merging the child's series (runtrader stopped its worker)."""
    global _child_dir
    _child_dir = None


def child_env(data_dir: str | Path, *, wipe: bool) -> dict[str, str]:
    """Return the environment for runtrader's qcluster child: ours, writing series to files.

    A runtrader already in multiprocess mode shares its own directory with the child.
    """
    if os.environ.get(MULTIPROC_ENV):
        return dict(os.environ)
    return {**os.environ, MULTIPROC_ENV: str(child_metrics_dir(data_dir, wipe=wipe))}


def merged_registry():
    """Return a registry of this process's series and the qcluster child's; None without one."""
    if _child_dir is None or os.environ.get(MULTIPROC_ENV):
        return None
    return MergedRegistry(REGISTRY, _child_dir)


class MergedRegistry:
    """This process's registry plus a multiprocess directory's series, as one exposition.

    A name both define (``rrr_alert_deliveries``, ``rrr_job_*``...) is one family: samples with
    the same labels are added (counters, histograms) or this process's value kept (gauges).
    """

    def __init__(self, own, directory: Path) -> None:
        self.own = own
        self.directory = directory

    def collect(self):
        """Yield the merged families (the interface ``generate_latest`` reads)."""
        others = CollectorRegistry()
        MultiProcessCollector(others, path=str(self.directory))
        theirs = {m.name: m for m in others.collect()}
        for metric in self.own.collect():
            other = theirs.pop(metric.name, None)
            yield metric if other is None else _merged(metric, other)
        yield from theirs.values()


def _merged(mine: Metric, theirs: Metric) -> Metric:
    merged = Metric(mine.name, mine.documentation, mine.type, mine.unit)
    index: dict[tuple, int] = {}
    for sample in mine.samples:
        index[(sample.name, tuple(sorted(sample.labels.items())))] = len(merged.samples)
        merged.samples.append(sample)
    for sample in theirs.samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        at = index.get(key)
        if at is None:
            index[key] = len(merged.samples)
            merged.samples.append(sample)
        elif mine.type != "gauge" and not sample.name.endswith("_created"):
            merged.samples[at] = merged.samples[at]._replace(
                value=merged.samples[at].value + sample.value
            )
    return merged


class QueueDepthOnCollect:
    """A collector that sets the queue-depth gauge from the broker at each scrape."""

    def collect(self):
        """Refresh ``rrr_jobs_queue_depth``; yield nothing (the gauge's own file carries it)."""
        from django.db import connections

        from monitoring.performance import jobs_queue_depth_refresh

        try:
            jobs_queue_depth_refresh()
        finally:
            # Each scrape is served on a thread of its own: an ORM broker's connection would
            # otherwise stay open after that thread is gone, one more every scrape.
            connections.close_all()
        return []


def cluster_metrics_server(host: str, port: int):
    """Serve the multiprocess directory's series on ``host:port``, gated as ``/metrics``."""
    from monitoring.metrics_server import gated_metrics_server

    registry = CollectorRegistry()
    registry.register(QueueDepthOnCollect())
    MultiProcessCollector(registry)
    return gated_metrics_server(host, port, registry)
