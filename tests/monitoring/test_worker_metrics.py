"""The django-q2 workers' series reach a scrape: a job run on a real qcluster process shows up
on ``taskworker --metrics-port`` (a deployment's cluster) and on runtrader's ``/metrics`` (its
qcluster child under ``make run``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitoring import worker_metrics
from tests.polling import wait_for
from tests.qcluster_process import ROOT, cluster_env, qcluster_log, qcluster_stop

OK, FAILS = ("math.sqrt", 16.0), ("math.sqrt", -1.0)  # -1: ValueError, a failed task


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_env(subprocess_env: dict[str, str], multiproc: Path) -> dict[str, str]:
    return cluster_env(subprocess_env, PROMETHEUS_MULTIPROC_DIR=str(multiproc))


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *command, "--skip-checks"],
            env=env, stdout=stderr, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _run_tasks() -> list[str]:
    from django_q.brokers import get_broker
    from django_q.models import Task
    from django_q.tasks import async_task

    get_broker().purge_queue()  # leftovers of an earlier run on this broker
    ids = [async_task(func, arg, sync=False) for func, arg in (OK, FAILS)]
    wait_for(lambda: Task.objects.filter(id__in=ids).count() == 2, 120, "both tasks to finish")
    return ids


def _samples(text: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _scrape(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _assert_job_series(found: dict[tuple, float]) -> None:
    func = (("func", "math.sqrt"),)
    assert found[("rrr_job_duration_seconds_count", func)] == 2
    assert found[("rrr_job_failures_total", func)] == 1
    delivered = {k: v for k, v in found.items() if k[0] == "rrr_alerts_raised_total"}
    assert delivered[("rrr_alerts_raised_total", (("kind", "task_failure"), ("severity", "error")))]


@pytest.mark.django_db(transaction=True)
def test_a_job_on_a_taskworker_shows_in_its_scrape(subprocess_env, tmp_path):
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"")  # a previous run's file: removed
    port = _free_port()
    env = {**_cluster_env(subprocess_env, multiproc), "METRICS_TOKEN": "s3cret"}
    proc = _start(["taskworker", "--metrics-port", str(port)], env, tmp_path / "tw.log")
    try:
        wait_for(lambda: "running." in qcluster_log(proc), 120, "the cluster to start")
        assert not (multiproc / "counter_999999.db").exists()
        _run_tasks()
        url = f"http://127.0.0.1:{port}/metrics"
        assert _scrape(url, token="wrong")[0] == 401  # the gate of /metrics
        status, text = _scrape(url, token="s3cret")
        assert status == 200
        _assert_job_series(_samples(text))
        assert "rrr_jobs_queue_depth 0.0" in text  # read from the broker at the scrape
    finally:
        stuck = qcluster_stop(proc)
    assert stuck is None, stuck


def test_taskworker_refuses_a_port_without_a_multiprocess_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["RRR_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "taskworker", "--metrics-port", "9",
         "--skip-checks"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--metrics-port needs PROMETHEUS_MULTIPROC_DIR" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_runtraders_metrics_include_its_qcluster_childs_jobs(
    subprocess_env, tmp_path, client, monkeypatch
):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    stale = tmp_path / "metrics" / "qcluster" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    env = worker_metrics.child_env(tmp_path, wipe=True)  # as runtrader's TaskWorker starts it
    assert not stale.exists()  # emptied at runtrader's start
    proc = _start(["qcluster"], _cluster_env(subprocess_env, Path(env["PROMETHEUS_MULTIPROC_DIR"])),
                  tmp_path / "child.log")  # fmt: skip
    try:
        wait_for(lambda: "running." in qcluster_log(proc), 120, "the cluster to start")
        _run_tasks()
        response = client.get("/metrics")
        assert response.status_code == 200
        text = response.content.decode()
        found = _samples(text)
        _assert_job_series(found)
        # One family per name: Prometheus refuses an exposition that repeats one.
        assert len(re.findall(r"^# TYPE rrr_job_duration_seconds ", text, re.M)) == 1
        assert ("process_cpu_seconds_total", ()) in found  # runtrader's own series stay
    finally:
        worker_metrics.child_metrics_forget()
        stuck = qcluster_stop(proc)
    assert stuck is None, stuck


def test_merged_families_add_counters_and_keep_this_processs_gauges(tmp_path, monkeypatch):
    directory = tmp_path / "mp"
    directory.mkdir()
    own = CollectorRegistry()
    Counter("rrr_t_deliveries", "d", ["channel"], registry=own).labels("slack").inc(2)
    Gauge("rrr_t_depth", "q", registry=own).set(5)
    script = (
        "from prometheus_client import Counter, Gauge\n"
        "sent = Counter('rrr_t_deliveries', 'd', ['channel'])\n"
        "sent.labels('slack').inc(3)\n"
        "sent.labels('sms').inc(1)\n"
        "Gauge('rrr_t_depth', 'q', multiprocess_mode='mostrecent').set(9)\n"
        "Gauge('rrr_t_var', 'v', multiprocess_mode='mostrecent').set(7.5)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    text = generate_latest(worker_metrics.MergedRegistry(own, directory)).decode()
    found = _samples(text)
    assert found[("rrr_t_deliveries_total", (("channel", "slack"),))] == 5
    assert found[("rrr_t_deliveries_total", (("channel", "sms"),))] == 1
    assert found[("rrr_t_depth", ())] == 5  # this process's own reading wins
    assert found[("rrr_t_var", ())] == 7.5
    assert len(re.findall(r"^# TYPE rrr_t_deliveries_total counter", text, re.M)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_scrapes_queue_depth_leaves_no_connection_open_on_its_thread():
    import threading

    from django.db import connection

    seen = {}  # with the ORM broker (no REDIS_URL) the count is a query on the scrape's thread

    def scrape() -> None:
        worker_metrics.QueueDepthOnCollect().collect()
        seen["open"] = connection.connection is not None

    thread = threading.Thread(target=scrape)
    thread.start()
    thread.join(60)
    assert seen == {"open": False}
