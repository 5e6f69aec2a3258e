"""Counting throttles: a sliding window over two fixed windows, in whichever cache is set up."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.cache import cache

from rrr_site.api.throttling import UserThrottle

pytestmark = pytest.mark.services  # the cache: Redis's under REDIS_URL


@pytest.fixture
def clock(settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "4/minute"}
    cache.clear()
    now = [600.0]  # a window boundary: minute 10 starts
    yield now
    cache.clear()


def _allowed(now: list[float], user_pk: int = 7) -> bool:
    throttle = UserThrottle()
    throttle.timer = lambda: now[0]
    user = SimpleNamespace(pk=user_pk, is_authenticated=True)
    request = SimpleNamespace(user=user, META={"REMOTE_ADDR": "127.0.0.1"}, headers={})
    allowed = throttle.allow_request(request, view=None)
    _allowed.wait = throttle.wait()
    return allowed


def test_the_rate_holds_across_a_window_boundary(clock):
    clock[0] = 659.0  # the last second of minute 10: four requests pass, the fifth does not
    assert [_allowed(clock) for _ in range(5)] == [True] * 4 + [False]
    assert 1 <= _allowed.wait <= 60
    clock[0] = 660.5  # minute 11 starts, but the last 60 s still hold those four requests
    assert not _allowed(clock)
    clock[0] = 690.0  # half of minute 10 slid out: 4 * 0.5 counted, two more may pass
    assert [_allowed(clock) for _ in range(3)] == [True, True, False]
    assert _allowed(clock, user_pk=8)  # per user
    clock[0] = 780.0  # two windows later nothing is counted
    assert all(_allowed(clock) for _ in range(4))
