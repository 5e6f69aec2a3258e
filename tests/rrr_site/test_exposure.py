"""What anonymous clients can reach: metrics by token or network, API docs by login, login URL."""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import RefreshToken

from tests.factories import UserFactory
from tests.rrr_site.test_settings import run_python

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
PRIVATE = (ipaddress.ip_network("10.0.0.0/8"),)


def metrics_status(remote: str = "127.0.0.1", **headers: str) -> int:
    """GET /metrics from ``remote`` with ``headers``; return the status code."""
    return Client(REMOTE_ADDR=remote).get("/metrics", headers=headers).status_code


# --- /metrics -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "remote,allowed",
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.1.2.3", False),
        ("192.168.0.7", False),
        ("2001:db8::1", False),
    ],
)
def test_default_networks_are_loopback_only(settings, remote, allowed):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = LOOPBACK
    assert metrics_status(remote) == (200 if allowed else 403)


@pytest.mark.django_db
def test_configured_network_admits_its_addresses_only(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = PRIVATE
    assert metrics_status("10.200.0.9") == 200
    assert metrics_status("127.0.0.1") == 403
    assert metrics_status("11.0.0.1") == 403


@pytest.mark.django_db
def test_proxied_request_never_gets_in_by_network(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    settings.METRICS_ALLOWED_NETWORKS = LOOPBACK
    assert metrics_status("127.0.0.1", x_forwarded_for="203.0.113.9") == 401
    assert metrics_status("127.0.0.1", forwarded="for=203.0.113.9") == 401
    auth = {"authorization": "Bearer s3cret-metrics-token", "x_forwarded_for": "203.0.113.9"}
    assert metrics_status("127.0.0.1", **auth) == 200


@pytest.mark.django_db
def test_bearer_token_admits_any_network_and_a_wrong_one_is_401(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    settings.METRICS_ALLOWED_NETWORKS = ()
    response = Client(REMOTE_ADDR="198.51.100.4").get(
        "/metrics", headers={"authorization": "Bearer s3cret-metrics-token"}
    )
    assert response.status_code == 200
    assert "django_http_requests_total_by_method_total" in response.content.decode()
    for header in ["Bearer s3cret-metrics-toke", "Bearer ", "Token s3cret-metrics-token", ""]:
        refused = Client(REMOTE_ADDR="198.51.100.4").get(
            "/metrics", headers={"authorization": header} if header else {}
        )
        assert refused.status_code == 401, header
        assert refused["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_wrong_token_is_refused_even_from_an_allowed_network(settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    settings.METRICS_ALLOWED_NETWORKS = LOOPBACK
    assert metrics_status("127.0.0.1", authorization="Bearer guess") == 401
    assert metrics_status("127.0.0.1") == 200


@pytest.mark.django_db
def test_no_token_configured_means_no_token_is_accepted(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ()
    assert metrics_status("127.0.0.1", authorization="Bearer ") == 401
    assert metrics_status("127.0.0.1") == 403


# --- API schema and docs, login URL ---------------------------------------------------------


@pytest.mark.django_db
def test_api_schema_and_docs_need_a_login():
    anonymous = Client()
    assert anonymous.get("/api/schema/").status_code in {401, 403}
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302
    assert urlparse(docs["Location"]).path == reverse("login")

    user = UserFactory(username="reader")
    access = RefreshToken.for_user(user).access_token
    bearer = {"authorization": f"Bearer {access}"}
    assert Client().get("/api/schema/", headers=bearer).status_code == 403  # no role yet
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])  # a flush drops migrated rows
    assert Client().get("/api/schema/", headers=bearer).status_code == 200
    # DRF's permanent tokens are the WebSockets' credential; they do not open the REST API.
    key = Token.objects.create(user=user).key
    with_token = Client().get("/api/schema/", headers={"authorization": f"Token {key}"})
    assert with_token.status_code in {401, 403}
    browser = Client()
    browser.force_login(user)
    assert browser.get("/api/docs/").status_code == 200
    assert browser.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_dashboard_login_redirect_lands_on_a_working_login_page():
    client = Client()
    response = client.get("/")
    assert response.status_code == 302
    target = urlparse(response["Location"])
    assert target.path == reverse("login") and "next=/" in target.query
    login_page = client.get(response["Location"])
    assert login_page.status_code == 200 and b'name="password"' in login_page.content


# --- production, in a process of its own ------------------------------------------------------

PRODUCTION_PROBE = """
import json, django
django.setup()
from django.test import Client
def status(path, remote="127.0.0.1", secure=False, **headers):
    response = Client(REMOTE_ADDR=remote).get(path, secure=secure, headers=headers)
    return [response.status_code, response.get("Location", "")]
print(json.dumps({
    "remote_plain": status("/metrics", remote="203.0.113.5"),
    "remote_token": status("/metrics", remote="203.0.113.5", authorization="Bearer tok-123456"),
    "remote_bad": status("/metrics", remote="203.0.113.5", authorization="Bearer nope"),
    "loopback": status("/metrics"),
    "proxied": status("/metrics", x_forwarded_for="203.0.113.5"),
    "docs": status("/api/docs/", secure=True),
    "schema": status("/api/schema/", secure=True),
    "health": status("/health"),
    "dashboard_http": status("/"),
}))
"""


def test_production_gates_metrics_docs_and_keeps_plain_http_scrapes(tmp_path):
    env = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": "k9#Qz!" + "vR2xL7pW4mN8bT1cY6hJ3gF5dS0aE" * 2,
        "ALLOWED_HOSTS": "testserver",
        "METRICS_TOKEN": "tok-123456",
    }
    result = run_python(PRODUCTION_PROBE, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    # /metrics is exempt from the HTTPS redirect, so the gate answers, not a 301 then a 200.
    assert found["remote_plain"][0] == 401
    assert found["remote_bad"][0] == 401
    assert found["remote_token"][0] == 200
    assert found["loopback"][0] == 200
    assert found["proxied"][0] == 401
    assert found["docs"][0] == 302 and found["docs"][1].startswith("/login/")
    assert found["schema"][0] in {401, 403}
    assert found["health"][0] == 200
    assert found["dashboard_http"][0] == 301, "everything else still goes to HTTPS"
