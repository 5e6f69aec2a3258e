"""Shared fixtures."""

from __future__ import annotations

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
