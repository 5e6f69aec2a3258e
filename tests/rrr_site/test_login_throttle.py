"""Password guesses through the HTML login forms are limited like the token endpoint's."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_a_minute(settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "auth": "3/minute"}
    cache.clear()
    yield
    cache.clear()


def victim(**extra):
    """The user whose password is guessed (right-Pa55)."""
    user = UserFactory(username="victim", **extra)
    user.set_password("right-Pa55")
    user.save()
    return user


def guess(client, path: str, password: str):
    return client.post(path, {"username": "victim", "password": password})


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_a_login_form_refuses_guesses_past_the_auth_rate(client, three_a_minute, path):
    victim(is_staff=True)
    answers = [guess(client, path, f"wrong{i}").status_code for i in range(3)]
    assert answers == [200, 200, 200]  # the form again, with its error
    refused = guess(client, path, "wrong3")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    assert client.get(path).status_code == 200  # the page itself still loads


def test_the_forms_and_the_token_endpoint_share_one_budget(client, three_a_minute):
    victim()
    assert guess(client, "/login/", "a").status_code == 200
    assert guess(client, "/admin/login/", "b").status_code == 200
    token = client.post(
        "/api/v1/auth/token",
        {"username": "victim", "password": "c"},
        content_type="application/json",
    )
    assert token.status_code == 401
    # The fourth guess, whichever door: refused, even with the right password.
    assert guess(client, "/login/", "right-Pa55").status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_right_password_within_the_rate_signs_in(client, three_a_minute):
    user = victim()
    assert guess(client, "/login/", "wrong").status_code == 200
    assert guess(client, "/login/", "right-Pa55").status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
