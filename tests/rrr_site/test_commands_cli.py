"""Every command starts light and documents every option.

One fresh interpreter sets Django up, then for each of the project's commands (in a forked
child, so that one command's imports never hide another's) imports its module and builds its
parser (what ``manage.py <command> --help`` does) and reports the heavy libraries that
appeared: scipy, torch, qiskit and pandas cost 0.5-2 s each at import, numpy, aiohttp, psycopg
and plotly's figure classes 0.05-0.3 s, and all must load only in the code paths that use them.
It also reports every option whose ``--help`` line says nothing. ``django.setup()`` itself
imports no app's admin module (the admin site discovers them on first use). Behaviour, not
timing: bench/startup.py measures the seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Its processes set Django up on the configured database (PostgreSQL's backend loads psycopg).
pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "torch", "qiskit", "pandas", "numpy", "aiohttp", "psycopg", "plotly.graph_objs")
# --strategy's help lists the built-in strategies, registered by importing
# trading.engine.strategies, which imports numpy (its indicators): these two parsers load it.
NUMPY_TO_LIST_STRATEGIES = {"backtest", "runtrader"}
# Modules the admin site imports when it is first used, never during django.setup().
ADMIN_MODULES = (
    "trading.admin",
    "django_q.admin",
    "rest_framework_simplejwt.models",
    "django.test",
)

PROBE = r"""
import argparse, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
import django
django.setup()
from django.core.management import get_commands, load_command_class

HEAVY = %(heavy)r
APPS = %(apps)r
ADMIN = %(admin)r
# psycopg: Django's PostgreSQL backend, when DATABASE_URL names one, loads it in set-up.
AT_SETUP = {m for m in HEAVY if m in sys.modules}
out = {"setup": sorted(m for m in AT_SETUP if m != "psycopg"), "commands": {},
       "admin_at_setup": sorted(m for m in ADMIN if m in sys.modules)}


def probe(name, app):
    parser = load_command_class(app, name).create_parser("manage.py", name)
    undocumented = [
        action.option_strings[-1]
        for action in parser._actions
        if action.option_strings
        and action.help in (None, "")
        and not isinstance(action, argparse._HelpAction)
    ]
    loaded = sorted(m for m in HEAVY if m in sys.modules and m not in AT_SETUP)
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
    code = PROBE % {"heavy": HEAVY, "apps": PROJECT_APPS, "admin": ADMIN_MODULES}
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
    heavy = {}
    for name, command in probe["commands"].items():
        allowed = {"numpy"} if name in NUMPY_TO_LIST_STRATEGIES else set()
        loaded = [m for m in command.get("heavy", []) if m not in allowed]
        if loaded:
            heavy[name] = loaded
    assert heavy == {}, f"these commands import heavy libraries at start-up: {heavy}"


def test_django_setup_imports_no_admin_module(probe) -> None:
    assert probe["admin_at_setup"] == [], f"set up imported {probe['admin_at_setup']}"


ADMIN_PROBE = r"""
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
import django
django.setup()
from django.contrib import admin
from django.core.management import call_command
from trading.models import Account
before = "trading.admin" in sys.modules
registered = admin.site.is_registered(Account)
after = "trading.admin" in sys.modules
call_command("check", "--tag", "admin")  # the admin checks see every ModelAdmin
print(before, registered, after, len(admin.site._registry))
"""


def test_the_admin_site_discovers_every_admin_module_on_first_use() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    done = subprocess.run(
        [sys.executable, "-c", ADMIN_PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    before, registered, after, count = done.stdout.splitlines()[-1].split()
    assert (before, registered, after) == ("False", "True", "True")
    assert int(count) >= 40  # every app's ModelAdmins, Django's and the third parties' included


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


EXIT_PROBE = r"""
import atexit, concurrent.futures, sys, threading, time
atexit.register(lambda: print("atexit ran"))
def later():
    time.sleep(0.2)
    print("thread finished")
threading.Thread(target=later).start()
concurrent.futures.ThreadPoolExecutor(2).submit(int).result()  # an idle pool left behind
print("x" * 200_000)
"""


def test_manage_py_exits_as_python_would_without_tearing_down(tmp_path) -> None:
    # manage.py ends with os._exit after the parts of an exit that matter: threads waited for,
    # atexit handlers run, output flushed, the status kept.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", EXIT_PROBE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-3:] == ["x" * 200_000, "thread finished", "atexit ran"]
    failed = subprocess.run(
        [sys.executable, "manage.py", "backtest", "--strategy", "sma_cross"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1 and "--start and --end are required" in failed.stderr
    shown = subprocess.run(
        [sys.executable, "manage.py", "backtest", "--help"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0 and shown.stdout.startswith("usage: manage.py backtest")
    assert "--max-hold" in shown.stdout and shown.stdout.endswith("\n")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_lost_at_exit_is_not_a_success() -> None:
    # Buffered output flushed only at exit that cannot be written (a full disk) must not end
    # with status 0 as if the file were complete: Python's own exit reports 120.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSTARTUP", "PYTHONUNBUFFERED")}
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", "print('report')"],
            cwd=ROOT, env=env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 120, done.stderr[-2000:]
    assert "standard output not written" in done.stderr
    # a reader that stops early (`| head -1`) is not an error
    piped = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", "print('x\\n' * 100)"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    piped.stdout.close()
    assert piped.wait(timeout=120) == 0 and b"Traceback" not in piped.stderr.read()
    # ... and when a write fails while the command runs (unbuffered), it stops without a
    # traceback, with the status of a command SIGPIPE ended (what came after did not happen)
    cut = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", "for i in range(9): print(i)"],
        cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    cut.stdout.close()
    assert cut.wait(timeout=120) == 141 and b"Traceback" not in cut.stderr.read()
