"""Browsers ask every site for /favicon.ico; the pages without an icon link (the admin, the API
docs) must not log a console error for it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_favicon_answers_no_content_to_anyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 204
    assert response.content == b""
