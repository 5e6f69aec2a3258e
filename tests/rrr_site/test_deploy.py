"""The deployment files: a valid compose file with no secret in it, a non-root multi-stage image,
systemd units that run unprivileged, and every file the compose file mounts present."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|API_KEY)", re.IGNORECASE)
# A secret is only ever a required variable or an empty default, never a literal.
FROM_ENVIRONMENT = re.compile(r"^\$\{[A-Z0-9_]+(:\?[^}]*|:-)\}$")
REQUIRED = {
    "SECRET_KEY": "s3cret-for-config-check",
    "ALLOWED_HOSTS": "rrr.example.com",
    "POSTGRES_PASSWORD": "pw-for-config-check",
    "GRAFANA_ADMIN_PASSWORD": "pw-for-config-check",
}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def environment_values(doc: dict):
    """Yield (where, name, value) for every environment entry of every service and anchor."""
    for name, service in doc["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            yield name, key, value
    for key, value in doc.get("x-rrr-env", {}).items():
        yield "x-rrr-env", key, value


def test_compose_holds_no_secret() -> None:
    secrets = [
        (where, key, value)
        for where, key, value in environment_values(compose())
        if SECRET_NAME.search(key) and not FROM_ENVIRONMENT.match(str(value))
    ]
    assert secrets == []
    # The database URL carries the password only through the required variable.
    url = compose()["x-rrr-env"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url


def test_compose_has_every_service_the_scale_out_needs() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "web", "qcluster", "migrate", "prometheus", "grafana"} <= set(
        services
    )
    traders = [name for name in services if name.startswith("trader-")]
    assert traders, "one runtrader service per account"
    app = {"web", "qcluster", "migrate", *traders}
    assert {services[name]["image"] for name in app} == {"${RRR_IMAGE:-rrr:latest}"}
    assert "replicas" in services["qcluster"]["deploy"]
    for name in traders:
        # SIGINT is runtrader's graceful stop; the default SIGTERM grace is too short to persist.
        assert services[name]["stop_signal"] == "SIGINT"
        assert "--live" not in " ".join(services[name]["command"])
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_web_workers_share_their_metrics() -> None:
    # uvicorn --workers N: N processes, each with its own series; /metrics merges them only from
    # PROMETHEUS_MULTIPROC_DIR, which must start empty (a tmpfs, a systemd runtime directory).
    web = compose()["services"]["web"]
    assert "--workers" in web["command"]
    folder = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(mount.split(":")[0] == folder for mount in web.get("tmpfs", []))
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(DEPLOY / "systemd" / "rrr-web.service")
    service = parser["Service"]
    assert "--workers" in service["ExecStart"]
    runtime = service["RuntimeDirectory"]
    assert f"PROMETHEUS_MULTIPROC_DIR=/run/{runtime} " in service["ExecStart"]


def test_compose_mounts_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{source} is mounted but missing"


def test_compose_config_validates() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {"PATH": "/usr/bin:/bin", **REQUIRED}
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    # A missing secret is refused, not defaulted.
    without = {k: v for k, v in env.items() if k != "SECRET_KEY"}
    refused = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=without
    )
    assert refused.returncode != 0
    assert "SECRET_KEY" in refused.stderr


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_image_is_multi_stage_non_root_cpu_torch() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    text = (DEPLOY / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in text
    assert "download.pytorch.org/whl/cpu" in text
    for line in text.splitlines():
        if line.strip().upper().startswith(("ENV ", "ARG ")):
            assert not SECRET_NAME.search(line), line


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Translate a .dockerignore pattern as Docker reads it: anchored at the context's root,
    ``*`` and ``?`` within one path part, ``**`` across any number of parts."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def docker_ignores(path: str) -> bool:
    """Say whether the build context leaves ``path`` out (a matched folder takes its files)."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [dockerignore_regex(p) for p in lines if p.strip() and not p.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(regex.match(prefix) for regex in patterns for prefix in prefixes)


@pytest.mark.parametrize(
    "path",
    [".env", "deploy/.env", "deploy/systemd/rrr.env", "prod.env", ".git/config",
     "data/db/trading.db", ".venv/bin/python", "trading/__pycache__/models.cpython-311.pyc"],
)  # fmt: skip
def test_image_context_leaves_out_secrets_and_local_state(path: str) -> None:
    # deploy/.env holds compose's secrets (docs/deploy.md): `COPY . .` must never take it.
    assert docker_ignores(path)


@pytest.mark.parametrize(
    "path",
    ["manage.py", "requirements.lock", "deploy/rrr.env.example", "marketdata/models.py",
     "rrr_site/static/rrr/live.js"],
)  # fmt: skip
def test_image_context_keeps_the_code(path: str) -> None:
    assert not docker_ignores(path)


def test_the_root_dockerignore_leaves_out_the_same_files() -> None:
    # The classic builder (DOCKER_BUILDKIT=0, `docker-compose run`) reads only the context's
    # .dockerignore, never deploy/Dockerfile.dockerignore: without it, data/ (the SQLite
    # database and the development secret key) and deploy/.env went to the daemon.
    def patterns(path: Path) -> list[str]:
        lines = path.read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    root = DEPLOY.parent / ".dockerignore"
    assert patterns(root) == patterns(DEPLOY / "Dockerfile.dockerignore")


@pytest.mark.parametrize(
    "unit", ["rrr-web.service", "rrr-qcluster@.service", "rrr-runtrader@.service"]
)
def test_systemd_units_run_unprivileged_with_secrets_outside(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(DEPLOY / "systemd" / unit)
    service = parser["Service"]
    assert service["User"] == "rrr"
    assert service["EnvironmentFile"].startswith(("/etc/rrr/", "-/etc/rrr/"))
    assert "Environment" not in service
    assert service["NoNewPrivileges"] == "true"
    if "runtrader" in unit:
        assert service["KillSignal"] == "SIGINT"
