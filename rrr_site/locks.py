"""Ownership locks that the operating system or the database releases when their owner dies.

One process owns a job (a backfill) or an engine (``runtrader`` on an account) by holding a named
lock for as long as it works on it. No PID or heartbeat is ever guessed at: a process killed with
SIGKILL, or a zombie nobody reaped, has already lost its lock, so a rerun can start at once.

- PostgreSQL: ``pg_try_advisory_lock`` on a dedicated psycopg connection kept open for the
  owner's lifetime (not Django's connection: those are per thread and closed between requests).
  The backend ends, and the lock goes, when the owner's socket closes.
- SQLite: ``fcntl.flock`` on a file beside the database file (``<db>.locks/``), so the lock is
  scoped to the database like an advisory lock; the kernel drops it when the owner's file
  descriptor closes, which includes process death.

A lock is scoped to one database: the same name on two databases never conflicts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# Server-side keep-alives: a lock whose owner's host vanished is freed in ~1 min, not hours.
_PG_SESSION = (
    "SET tcp_keepalives_idle = 30",
    "SET tcp_keepalives_interval = 10",
    "SET tcp_keepalives_count = 3",
    "SET idle_session_timeout = 0",  # the lock connection is idle by design; never time it out
    "SET idle_in_transaction_session_timeout = 0",
)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class LockHeld(Exception):
    """Another live process holds the lock; the message names it when it can."""


class OwnerLock(Protocol):
    """A named lock held by this process until ``release()`` or its death."""

    name: str

    @property
    def held(self) -> bool:
        """Return True while this process holds the lock."""
        ...

    def acquire(self) -> bool:
        """Take the lock without waiting; return False when another process holds it."""
        ...

    def release(self) -> None:
        """Give the lock up (nothing happens when it is not held)."""
        ...

    def holder(self) -> str | None:
        """Return who holds the lock, when that can be told."""
        ...

    def alive(self) -> bool:
        """Return True while the lock is still held (False once its connection is lost)."""
        ...


def owner_label() -> str:
    """Return who this process is, as locks and ownership rows name it."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


_owner_label = owner_label


def lock_key(name: str) -> int:
    """Return the signed 64-bit advisory-lock key of ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"rrr-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresAdvisoryLock:
    """A session-level PostgreSQL advisory lock on a dedicated connection."""

    def __init__(self, name: str, conn_params: dict[str, Any]) -> None:
        self.name = name
        self.key = lock_key(name)
        self._params = conn_params
        self._conn: Any = None

    @property
    def held(self) -> bool:
        """Return True while this process holds the lock."""
        return self._conn is not None

    def _connect(self) -> Any:
        import psycopg

        # The application name tells other processes (and pg_stat_activity) who holds a lock.
        label = f"rrr lock {_owner_label()}"[:63]
        # (The database URL may name an application too: the lock's own name wins.)
        conn = psycopg.connect(**{**self._params, "application_name": label}, autocommit=True)
        for statement in _PG_SESSION:
            try:
                conn.execute(statement)
            except psycopg.errors.UndefinedObject:
                pass  # a setting this server version does not have (idle_session_timeout < 14)
        return conn

    def acquire(self) -> bool:
        """Take the lock without waiting; return False when another session holds it."""
        if self._conn is not None:
            return True
        conn = self._connect()
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        """Unlock and close the connection (closing alone would free it too)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except Exception as exc:  # the connection is gone: so is the lock
            logger.warning("lock %s: unlock failed (%s); closing its connection", self.name, exc)
        finally:
            conn.close()

    def holder(self) -> str | None:
        """Return the application name of the session holding the lock, if any."""
        sql = (
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s"
        )
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute(sql, (unsigned >> 32, unsigned & 0xFFFF_FFFF)).fetchone()
        if not row:
            return None
        label = str(row[0])
        return label.removeprefix("rrr lock ") if label.startswith("rrr lock ") else label

    def alive(self) -> bool:
        """Return True while the lock's connection still answers."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except Exception as exc:
            logger.error("lock %s: connection lost (%s); the lock is gone", self.name, exc)
            conn, self._conn = self._conn, None  # acquire() may now try to take it again
            with contextlib.suppress(Exception):
                conn.close()
            return False
        return True


class FileLock:
    """An exclusive ``flock`` on a file; the kernel releases it when the descriptor closes."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Return True while this process holds the lock."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock without waiting; return False when another descriptor holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Not inherited by exec'd children (Python opens non-inheritable), so only we hold it.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, _owner_label().encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Unlock by closing the descriptor (the file stays for the next owner)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def holder(self) -> str | None:
        """Return the owner label the holder wrote into the file, if readable."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return text or None

    def alive(self) -> bool:
        """Return True while held: a kernel lock cannot be lost while the descriptor is open."""
        return self._fd is not None


def _sqlite_lock_dir(db_name: str) -> Path:
    """Return the lock folder of an SQLite database: beside its file, or per process in memory."""
    if db_name and db_name != ":memory:" and "mode=memory" not in db_name:
        path = Path(db_name.removeprefix("file:").split("?", 1)[0]).resolve()
        return path.with_name(f"{path.name}.locks")
    # An in-memory database lives in this process only; so do its locks.
    return Path(settings.DATA_DIR) / "locks" / f"memory-{os.getpid()}"


def lock_file_name(name: str) -> str:
    """Return a safe, unique file name for the lock ``name`` (names may hold any character)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{_SAFE.sub('_', name)[:60]}-{digest}.lock"


def owner_lock(name: str, *, using: str = "default") -> OwnerLock:
    """Return the lock ``name`` for database ``using`` (advisory on PostgreSQL, flock on SQLite)."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        params = dict(connection.get_connection_params())
        for key in ("cursor_factory", "context"):  # Django's adapters: not needed to lock
            params.pop(key, None)
        return PostgresAdvisoryLock(name, params)
    if connection.vendor == "sqlite":
        folder = _sqlite_lock_dir(str(connection.settings_dict["NAME"]))
        return FileLock(name, folder / lock_file_name(name))
    raise NotImplementedError(f"no owner lock for the {connection.vendor} database backend")


@contextlib.contextmanager
def lock_held(name: str, *, using: str = "default", busy: str = "") -> Iterator[OwnerLock]:
    """Hold the lock ``name`` for the block; raise LockHeld (message ``busy``) if it is taken."""
    lock = owner_lock(name, using=using)
    if not lock.acquire():
        holder = lock.holder()
        what = busy or f"lock {name!r} is held by another process"
        raise LockHeld(f"{what} ({holder})" if holder else what)
    try:
        yield lock
    finally:
        lock.release()
