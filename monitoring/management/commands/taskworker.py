"""``manage.py taskworker``: django-q2's ``qcluster`` whose main process serves its workers'
metrics (job durations and failures, alert deliveries, VaR, ML accuracy, queue depth).

The workers write their series to ``PROMETHEUS_MULTIPROC_DIR`` (set before the process starts,
one directory per host or container); the main process removes a previous run's files, then
serves the merged series on ``--metrics-port`` (or ``QCLUSTER_METRICS_PORT``) behind the gate of
``/metrics``. Without a port it is plain ``qcluster``.
"""

from __future__ import annotations

import multiprocessing
import os

from django.core.management.base import CommandError
from django_q.management.commands.qcluster import Command as QclusterCommand

from monitoring.worker_metrics import MULTIPROC_ENV, cluster_metrics_server, stale_files_remove


class Command(QclusterCommand):
    help = "Start a django-q2 cluster whose main process serves its workers' metrics."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=int(os.environ.get("QCLUSTER_METRICS_PORT") or 0) or None,
            help="Serve the workers' metrics on this port (default: QCLUSTER_METRICS_PORT)",
        )
        parser.add_argument(
            "--metrics-host",
            default=os.environ.get("QCLUSTER_METRICS_HOST", "127.0.0.1"),
            help="Address for --metrics-port (default 127.0.0.1, or QCLUSTER_METRICS_HOST)",
        )

    def handle(self, *args, **options) -> None:
        port = options["metrics_port"]
        server = None
        if port is not None:
            server = self._serve(options["metrics_host"], port)
        try:
            super().handle(*args, **options)
            # qcluster's handle returns once the cluster runs; the process then waits for the
            # sentinel at exit. Wait here instead, so the server lives as long as the cluster.
            for child in multiprocessing.active_children():
                child.join()
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()

    def _serve(self, host: str, port: int):
        if not 0 < port < 65536:
            raise CommandError(f"--metrics-port must be 1-65535, got {port}")
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory or not os.path.isdir(directory):
            raise CommandError(
                f"--metrics-port needs {MULTIPROC_ENV}: an existing directory, set before the "
                "process starts, where the workers write their series"
            )
        stale_files_remove(directory, keep_pid=os.getpid())
        try:
            server = cluster_metrics_server(host, port)
        except OSError as exc:
            raise CommandError(f"--metrics-port: cannot listen on {host}:{port} ({exc})") from exc
        self.stdout.write(f"metrics: http://{host}:{port}/metrics (the workers' series)")
        return server
