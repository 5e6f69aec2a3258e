"""Every command starts light and documents every option.

One fresh interpreter sets Django up, then for each of the project's commands (in a forked
child, so that one command's imports never hide another's) imports its module and builds its
parser (what ``manage.py <command> --help`` does) and reports the heavy libraries that
appeared: scipy, torch, qiskit and pandas cost 0.5-2 s each at import and must load only in the
code paths that use them. It also reports every option whose ``--help`` line says nothing.
Behaviour, not timing: bench/startup.py measures the seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "torch", "qiskit", "pandas")

PROBE = r"""
import argparse, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
import django
django.setup()
from django.core.management import get_commands, load_command_class

HEAVY = %(heavy)r
APPS = %(apps)r
out = {"setup": sorted(m for m in HEAVY if m in sys.modules), "commands": {}}


def probe(name, app):
    parser = load_command_class(app, name).create_parser("manage.py", name)
    undocumented = [
        action.option_strings[-1]
        for action in parser._actions
        if action.option_strings
        and action.help in (None, "")
        and not isinstance(action, argparse._HelpAction)
    ]
    loaded = sorted(m for m in HEAVY if m in sys.modules)
    return {"app": app, "heavy": loaded, "undocumented": undocumented}


for name, app in sorted(get_commands().items()):
    if app not in APPS:
        continue
    # A forked child per command: each starts from the same fresh set-up process, so what one
    # command imports never hides what another does.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            report = probe(name, app)
        except BaseException as exc:
            report = {"app": app, "error": repr(exc)}
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        out["commands"][name] = json.loads(pipe.read())
    os.waitpid(pid, 0)
print(json.dumps(out))
"""

# Django's own options (--verbosity, --settings, ...) are documented by Django; a project command
# is one whose app is ours.
PROJECT_APPS = (
    "backtesting",
    "marketdata",
    "models_ml",
    "monitoring",
    "research",
    "risk",
    "trading",
)


@pytest.fixture(scope="module")
def probe() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    code = PROBE % {"heavy": HEAVY, "apps": PROJECT_APPS}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_probe_sees_every_project_command(probe) -> None:
    found = set(probe["commands"])
    assert {"backtest", "backfill", "ingest", "train", "runtrader", "risk"} <= found
    failed = {name: c["error"] for name, c in probe["commands"].items() if "error" in c}
    assert failed == {}, f"commands whose parser could not be built: {failed}"


def test_django_setup_loads_no_heavy_library(probe) -> None:
    assert probe["setup"] == [], f"django.setup() imports {probe['setup']}"


def test_no_command_loads_a_heavy_library_to_build_its_parser(probe) -> None:
    heavy = {name: c["heavy"] for name, c in probe["commands"].items() if c.get("heavy")}
    assert heavy == {}, f"these commands import heavy libraries at start-up: {heavy}"


def test_every_option_of_every_command_has_help_text(probe) -> None:
    commands = probe["commands"].items()
    bare = {name: c["undocumented"] for name, c in commands if c.get("undocumented")}
    assert bare == {}, f"options without help text: {bare}"


def test_logs_go_to_stderr_as_json_and_leave_stdout_to_the_command() -> None:
    code = (
        "import logging, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'rrr_site.settings');"
        "import django; django.setup(); logging.getLogger('rrr.probe').warning('hello');"
        "print('output')"
    )
    env = dict(os.environ, LOG_LEVEL="INFO")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "output\n"
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["level"] == "WARNING" and record["message"] == "hello"


@pytest.mark.parametrize(("verbosity", "levels"), [("0", set()), ("3", {"WARNING", "INFO"})])
def test_verbosity_sets_the_log_level(verbosity: str, levels: set[str]) -> None:
    code = (
        "import logging; log = logging.getLogger('rrr.probe'); "
        "log.warning('w'); log.info('i'); print('output')"
    )
    env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code, "-v", verbosity],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # (shell lists its automatic imports on stdout at verbosity 2+; logs never go there)
    assert done.stdout.strip().endswith("output") and "rrr.probe" not in done.stdout
    records = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert {r["level"] for r in records if r["logger"] == "rrr.probe"} == levels
