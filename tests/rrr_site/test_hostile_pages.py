"""The dashboard's pages and the API docs as a newcomer and an attacker see them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_redoc_is_served_offline_without_third_party_fonts(client):
    user = UserFactory()
    user.groups.add(Group.objects.get(name="viewer"))
    client.force_login(user)
    page = client.get("/api/redoc/").content.decode()
    assert "redoc.standalone.js" in page and "/static/" in page
    assert "fonts.googleapis.com" not in page and "https://" not in page
