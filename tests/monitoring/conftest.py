"""Fixtures the stream and live-update tests share (each module asks for them by name)."""

from __future__ import annotations

import pytest

from tests.fakes.notify import FakeAlertServices
from tests.fakes.threaded import served


@pytest.fixture
def fresh_channel_layer():
    """Give the test its own channel layer (and so its own hub on its own event loop): a Redis
    layer left by an earlier test holds locks bound to that test's (closed) event loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def fast_password_hashing(settings):
    """Hash test passwords cheaply: these tests exercise the stream, not PBKDF2."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def slack(settings):
    """A local server speaking Slack's webhook API (and the other alert services'), with Django
    pointed at it; a module may override it (test_alert_concurrency adds its rule)."""
    server = FakeAlertServices()
    with served(server):
        settings.SLACK_WEBHOOK_BASE = f"{server.url}/services"
        yield server
