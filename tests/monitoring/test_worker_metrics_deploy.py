"""The deployment files run each django-q2 cluster as ``taskworker`` serving its workers'
series from an empty multiprocess directory, and Prometheus scrapes every one of them."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_clusters_serve_their_workers_series_and_prometheus_finds_each_replica():
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    cluster = services["qcluster"]
    assert cluster["command"][:3] == ["python", "manage.py", "taskworker"]
    assert "--metrics-port=9109" in cluster["command"]
    assert "--metrics-host=0.0.0.0" in cluster["command"]
    assert "9109" in cluster["expose"]
    folder = cluster["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(mount.split(":")[0] == folder for mount in cluster["tmpfs"])  # empty at start

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sd = jobs["rrr-qcluster"]["dns_sd_configs"][0]
    assert sd["names"] == ["qcluster"] and sd["type"] == "A" and sd["port"] == 9109


def test_systemd_clusters_serve_from_their_own_runtime_directory():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(DEPLOY / "systemd" / "rrr-qcluster@.service")
    service = parser["Service"]
    runtime = service["RuntimeDirectory"]
    assert "%i" in runtime  # one directory per instance: two clusters never share files
    start = service["ExecStart"]
    assert f"PROMETHEUS_MULTIPROC_DIR=/run/{runtime} " in start
    assert "manage.py taskworker --metrics-port 910%i" in start
    assert service["KillMode"] == "mixed"
