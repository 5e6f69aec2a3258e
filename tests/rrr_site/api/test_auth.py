"""Tokens, sessions with CSRF, roles, default deny, throttling and CORS of the API."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient
from rest_framework.views import APIView

from rrr_site.api.permissions import DenyAll
from rrr_site.api.roles import Role, role_of

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-staple"  # tests.factories.UserFactory's


def _login(client: APIClient, username: str) -> dict:
    response = client.post(
        "/api/v1/auth/token", {"username": username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_token_obtain_use_refresh_and_revoke(world):
    client = APIClient()
    bad = client.post("/api/v1/auth/token", {"username": "trader", "password": "x"}, format="json")
    assert bad.status_code == 401
    assert client.post("/api/v1/auth/token", {}, format="json").status_code == 400
    pair = _login(client, "trader")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    me = client.get("/api/v1/auth/me").json()
    assert me == {"username": "trader", "role": "trader",
                  "accounts": [{"id": world.paper.pk, "name": "paper"}]}  # fmt: skip
    # Refresh rotates: the new refresh works once, the old one is blacklisted.
    fresh = APIClient().post("/api/v1/auth/token/refresh", {"refresh": pair["refresh"]},
                             format="json")  # fmt: skip
    assert fresh.status_code == 200 and fresh.json()["refresh"] != pair["refresh"]
    again = APIClient().post("/api/v1/auth/token/refresh", {"refresh": pair["refresh"]},
                             format="json")  # fmt: skip
    assert again.status_code == 401
    # Revoke (log out): the refresh token never works again.
    new_refresh = fresh.json()["refresh"]
    revoked = APIClient().post("/api/v1/auth/token/revoke", {"refresh": new_refresh},
                               format="json")  # fmt: skip
    assert revoked.status_code == 200
    after = APIClient().post("/api/v1/auth/token/refresh", {"refresh": new_refresh},
                             format="json")  # fmt: skip
    assert after.status_code == 401


def test_bad_and_missing_tokens_are_401(world):
    client = APIClient()
    assert client.get("/api/v1/portfolio").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert client.get("/api/v1/portfolio").status_code == 401
    # A DRF token (the WebSockets' credential) does not open the REST API.
    from rest_framework.authtoken.models import Token

    key = Token.objects.create(user=world.users["trader"]).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/portfolio").status_code == 401


def test_session_needs_csrf_for_writes(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["trader"])
    assert client.get("/api/v1/portfolio").status_code == 200
    refused = client.post("/api/v1/auth/me", {}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]


def test_roles_rank_and_superuser_is_admin(world, admin_user):
    assert role_of(world.users["viewer"]) is Role.VIEWER
    assert role_of(world.users["trader"]) is Role.TRADER
    assert role_of(world.users["admin"]) is Role.ADMIN
    assert role_of(admin_user) is Role.ADMIN
    world.users["viewer"].is_active = False
    assert role_of(world.users["viewer"]) is Role.NONE


def test_default_permission_denies_everything(world, rf):
    class Forgetful(APIView):
        def get(self, request):
            raise AssertionError("must never run")

    assert Forgetful.permission_classes == [DenyAll]
    request = rf.get("/x")
    request.user = world.users["admin"]
    request._force_auth_user = world.users["admin"]
    from rest_framework.test import force_authenticate

    force_authenticate(request, user=world.users["admin"])
    assert Forgetful.as_view()(request).status_code == 403


def test_throttling_per_user_from_settings(world, settings):
    from django.core.cache import cache

    cache.clear()  # counts of earlier tests' requests (user ids repeat across tests)
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "3/minute"}
    from tests.rrr_site.api.conftest import bearer_client

    client = bearer_client(world.users["viewer"])
    codes = [client.get("/api/v1/auth/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    cache.clear()


def test_cors_only_for_configured_origins(world):
    from tests.rrr_site.api.conftest import bearer_client

    client = bearer_client(world.users["viewer"])
    closed = client.get("/api/v1/auth/me", HTTP_ORIGIN="http://localhost:5173")
    assert "access-control-allow-origin" not in closed.headers
    with override_settings(CORS_ALLOWED_ORIGINS=["http://localhost:5173"]):
        opened = client.get("/api/v1/auth/me", HTTP_ORIGIN="http://localhost:5173")
        assert opened.headers["access-control-allow-origin"] == "http://localhost:5173"
        other = client.get("/api/v1/auth/me", HTTP_ORIGIN="http://evil.example")
        assert "access-control-allow-origin" not in other.headers


def test_docs_pages_served_offline(admin_client):
    page = admin_client.get("/api/docs/")
    assert page.status_code == 200
    assert b"swagger-ui" in page.content.lower()
    redoc = admin_client.get("/api/redoc/")
    assert redoc.status_code == 200
    for html in (page.content.decode(), redoc.content.decode()):
        # No asset from another host. (Not a bare "cdn" search: the page's random CSRF token
        # spelled it, case folded, about once in 200 loads.)
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
        assert "cdn." not in html.lower()
    from django.contrib.staticfiles import finders

    urls = _static_urls(page.content.decode() + redoc.content.decode())
    assert any("redoc" in u for u in urls) and any("swagger-ui" in u for u in urls)
    for url in urls:  # every asset the pages load is a local static file
        assert finders.find(url.removeprefix("/static/")), url
    assert Client().get("/api/docs/").status_code == 302


def _static_urls(html: str) -> list[str]:
    import re

    return sorted(set(re.findall(r'(/static/[^"\']+)', html)))


def test_bootstrap_puts_the_superuser_in_admin(db):
    import os

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("bootstrap", stdout=open(os.devnull, "w"))
    admin = get_user_model().objects.get(is_superuser=True)
    assert list(admin.groups.values_list("name", flat=True)) == ["admin"]
