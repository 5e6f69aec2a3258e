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
