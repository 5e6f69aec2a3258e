"""Fixtures the stream and live-update tests share (each module asks for them by name)."""

from __future__ import annotations

import pytest


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
