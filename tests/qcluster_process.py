"""Real ``manage.py qcluster`` processes for tests and benches: started, stopped the way
django-q2 expects, and killed, saying which process hung and why, only when they do not stop.

Stop a cluster by sending SIGTERM to its main process alone. Its handler sets the sentinel's
stop event; the sentinel stops the pusher, hands each worker a STOP after the task it holds
(an in-flight trial is finished and recorded, not lost) and waits for the monitor.

Never SIGTERM the cluster's whole process group (``os.killpg``; systemd's default
``KillMode=control-group`` does the same). The sentinel and its children keep SIGTERM's
default action and die at once, the sentinel usually inside ``stop_event.wait()``, counted as a
sleeper of the event's ``multiprocessing.Condition``. The main process's handler, if it still
finds the sentinel alive, calls ``stop_event.set()``, whose ``notify_all`` blocks for ever
waiting for that dead sleeper to wake. The cluster logs "stopping." and never exits. Under load
this hung 2 of 4 clusters in one stop (``bench/sweep_scaling.py``, December 2026).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# django-q2's start-up lines name each child's pid.
_ROLES = (
    (re.compile(r"(Process-\w+) ready for work at (\d+)"), "worker"),
    (re.compile(r"(Process-\w+) monitoring at (\d+)"), "monitor"),
    (re.compile(r"(Process-\w+) pushing tasks at (\d+)"), "pusher"),
)


def cluster_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """Return the environment of a production cluster on ``base``'s database, ``extra`` added.

    One worker; tasks run by it (``Q_SYNC`` off), signed with this process's ``SECRET_KEY``
    (django-q2 checks the signature); this process's ``REDIS_URL`` broker (else the ORM broker
    of the database); not configured for tests (no ``PYTEST_VERSION``).
    """
    from django.conf import settings

    env = {**base, "Q_SYNC": "false", "Q_WORKERS": "1", "SECRET_KEY": settings.SECRET_KEY}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.pop("PYTEST_VERSION", None)
    return {**env, **extra}


def qcluster_start(
    env: dict[str, str], log: Path, *, skip_checks: bool = True, cwd: Path = ROOT
) -> subprocess.Popen:
    """Start ``manage.py qcluster`` as the leader of its own session, stderr to ``log``.

    A pipe nobody reads would fill and stall its logging, hence the file. ``skip_checks``: the
    system checks' URL imports (the research stack) would double its start; CI runs
    ``manage.py check`` anyway. ``cwd``: where it runs (a worker finds a strategy by path, not cwd).
    """
    args = [sys.executable, str(ROOT / "manage.py"), "qcluster"]
    args += ["--skip-checks"] if skip_checks else []
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    return proc


def qcluster_log(proc: subprocess.Popen, tail: int = 3000) -> str:
    """Return the end of what a cluster started by ``qcluster_start`` logged."""
    path: Path = proc.log  # type: ignore[attr-defined]
    return path.read_text(errors="replace")[-tail:] if path.exists() else ""


def qcluster_running(proc: subprocess.Popen) -> bool:
    """Return True once the cluster says it is running (its workers are up)."""
    path: Path = proc.log  # type: ignore[attr-defined]
    return path.exists() and "running." in path.read_text(errors="replace")


def group_members(pgid: int) -> list[int]:
    """Return the pids still alive (not zombies) in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            members.append(int(entry.name))
    return sorted(members)


def _roles(proc: subprocess.Popen) -> dict[int, str]:
    roles = {proc.pid: "main"}
    text = qcluster_log(proc, tail=10**7)
    for pattern, role in _ROLES:
        for _, pid in pattern.findall(text):
            roles[int(pid)] = role
    return roles


def _describe(pid: int, roles: dict[int, str]) -> str:
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "running"
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return f"{pid} (gone)"
    role = roles.get(pid) or ("sentinel" if roles.get(ppid) == "main" else "child")
    return f"{role} {pid} (waiting in {wchan})"


def hang_report(proc: subprocess.Popen) -> str:
    """Say which processes of a cluster are still alive, what they wait in, and what it last
    logged: the reason a stop did not finish."""
    roles = _roles(proc)
    alive = group_members(proc.pid)
    described = ", ".join(_describe(pid, roles) for pid in alive) or "none"
    lines = [line for line in qcluster_log(proc).splitlines() if line.strip()]
    why = ""
    if alive == [proc.pid]:
        why = (
            "; only the main process is left: it waits for a sentinel that died (a SIGTERM "
            "that reached the sentinel too, see tests/qcluster_process.py)"
        )
    elif any(roles.get(pid) == "worker" for pid in alive):
        why = "; a worker is still running its task"
    return f"alive: {described}{why}; last log line: {lines[-1] if lines else '(none)'}"


def qcluster_stop(proc: subprocess.Popen, grace: float = 60.0) -> str | None:
    """Stop one cluster as django-q2 expects; return None, or what hung if it had to be killed."""
    return qcluster_stop_all([proc], grace)[0]


def qcluster_stop_all(procs: list[subprocess.Popen], grace: float = 60.0) -> list[str | None]:
    """Stop clusters as django-q2 expects, all at once; return per cluster None or what hung.

    SIGTERM goes to each main process only (once: a second one would run the stop handler
    again inside the first); each cluster finishes the tasks its workers hold and exits. One
    still alive ``grace`` seconds later is described (``hang_report``), then its whole process
    group gets SIGKILL. Any member left after a clean exit (there should be none) is killed too.
    """
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    return [_wait_or_kill(proc, deadline, grace) for proc in procs]


def _wait_or_kill(proc: subprocess.Popen, deadline: float, grace: float) -> str | None:
    report = None
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        report = f"qcluster {proc.pid} still running {grace:g} s after SIGTERM: "
        report += hang_report(proc) + "; its process group was killed (SIGKILL)"
        _kill_group(proc.pid)
        proc.wait(30)
    left_by = time.monotonic() + 10
    while group_members(proc.pid) and time.monotonic() < left_by:
        time.sleep(0.05)
    left = group_members(proc.pid)
    if left:
        _kill_group(proc.pid)
        report = (report or "") + f" {len(left)} orphan(s) of qcluster {proc.pid} killed: {left}"
    return report


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # every member is gone already
