"""Shared fixtures."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def admin_user(db):
    """A superuser."""
    from tests.factories import UserFactory  # imported lazily: engine tests run without Django

    return UserFactory(username="root-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, admin_user):
    """A test client logged in as a superuser."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def subprocess_env(transactional_db, tmp_path):
    """Environment for a ``manage.py`` subprocess that works on this test's database."""
    import os

    from django.db import connection

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    env["RRR_DATA_DIR"] = str(tmp_path)
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        user = settings_dict.get("USER") or "postgres"
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"
    else:
        env["SQLITE_PATH"] = str(settings_dict["NAME"])
    return env


@pytest.fixture
def paper(transactional_db):
    """The bootstrapped paper account (symbols, limits, trading state)."""
    import os

    from django.core.management import call_command

    from trading.models import Account

    call_command("bootstrap", "--no-admin", stdout=open(os.devnull, "w"))
    return Account.objects.get(name="paper")


@pytest.fixture
async def close_thread_connections():
    """Close the connection sync_to_async's worker thread opened, so teardown can drop the DB."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


# --- CI's PostgreSQL half: only the tests the database and Redis settings can change -----------
# `pytest --database-only` (the PostgreSQL + Redis half of .ci/run) deselects the tests that
# reach no database or settings-switched service: pytest-django gives them no database (no
# django_db mark, no db/transactional_db/live_server fixture; it refuses them any connection)
# and they are not marked `services`. Those give the same result on either setup, and the SQLite
# half runs every test. Mark `services` a test that reaches what DATABASE_URL or REDIS_URL
# switch without pytest-django's database: the channel layer, the cache, the task broker, or a
# process started on the configured database.
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "live_server", "django_db_reset_sequences",
     "django_db_serialized_rollback"}
)  # fmt: skip


def pytest_addoption(parser):
    parser.addoption(
        "--database-only",
        action="store_true",
        help="run only the tests that use the database or a service REDIS_URL switches",
    )


def reaches_services(item) -> bool:
    """Return True when the database or Redis settings can change what ``item`` tests."""
    if item.get_closest_marker("django_db") or item.get_closest_marker("services"):
        return True
    return bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--database-only"):
        return
    kept = [item for item in items if reaches_services(item)]
    dropped = [item for item in items if not reaches_services(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# The rule above, checked as every test runs (on either setup): a test it calls database-free
# fails if it took the cache or a channel layer, whose backends REDIS_URL switches to Redis (in
# the test's own thread: a thread another test left behind is not this test's doing).
_switched_uses: list[str] | None = None
_test_thread = 0


def _record_switched_use(cls, what: str) -> None:
    original = cls.__getitem__

    def getitem(self, alias):
        if _switched_uses is not None and threading.get_ident() == _test_thread:
            _switched_uses.append(f"{what} {alias!r}")
        return original(self, alias)

    cls.__getitem__ = getitem


def _skip_housekeeping(cls) -> None:
    # Django closes the caches already open after each request (request_finished), through
    # ``all(initialized_only=True)``: a cache another test opened, not a use by this one.
    original = cls.all

    def all_(self, initialized_only=False):
        global _switched_uses
        if not initialized_only or _switched_uses is None:
            return original(self, initialized_only)
        uses, _switched_uses = _switched_uses, None
        try:
            return original(self, initialized_only)
        finally:
            _switched_uses = uses

    cls.all = all_


def pytest_configure(config):
    from channels.layers import ChannelLayerManager
    from django.core.cache import CacheHandler

    _record_switched_use(CacheHandler, "the cache")
    _skip_housekeeping(CacheHandler)
    _record_switched_use(ChannelLayerManager, "the channel layer")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _switched_uses, _test_thread
    if reaches_services(item):
        return (yield)
    _switched_uses, _test_thread = [], threading.get_ident()
    try:
        result = yield
    finally:
        uses, _switched_uses = _switched_uses, None
    if uses:
        raise AssertionError(
            f"{item.nodeid} used {', '.join(sorted(set(uses)))}, which REDIS_URL switches, "
            "without a database fixture: mark it pytest.mark.services so that the PostgreSQL "
            "+ Redis half of CI (pytest --database-only) runs it too"
        )
    return result
