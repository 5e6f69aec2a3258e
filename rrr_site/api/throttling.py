"""Throttles: a sliding-window request counter per user, address or scope, in the cache.

DRF's ``SimpleRateThrottle`` stores the list of every request time of the window and rewrites it
on each request: at the default 6000/minute that is a pickled list of up to 6000 floats read and
written per request (100 KB to and from Redis at 200 requests/s). These keep two integers per
client instead, the counts of the current and the previous fixed window; the rate seen is
``current + previous * (the share of the previous window still inside the sliding window)``,
so a burst across a window boundary cannot pass twice the rate. On Redis one pipelined round
trip counts and reads. Rates come from ``settings.API_THROTTLE_RATES[scope]`` on each request,
so the environment and tests decide.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle


def count_request(key: str, window: int, duration: int) -> tuple[int, int]:
    """Add one to ``key``'s count in ``window``; return (this window's, the previous one's)."""
    now_key, prev_key = f"{key}:{window}", f"{key}:{window - 1}"
    timeout = 2 * duration + 1  # the previous window is still read during the next one
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        now_key, prev_key = cache.make_key(now_key), cache.make_key(prev_key)
        pipe = cache._cache.get_client(now_key, write=True).pipeline(transaction=False)
        current, _, previous = pipe.incr(now_key).expire(now_key, timeout).get(prev_key).execute()
        return int(current), int(previous or 0)
    cache.add(now_key, 0, timeout)
    try:
        current = cache.incr(now_key)
    except ValueError:  # evicted between add and incr
        cache.set(now_key, 1, timeout)
        current = 1
    return current, int(cache.get(prev_key) or 0)


def uncount_request(key: str, window: int) -> None:
    """Take back one request of ``key`` in ``window`` (a refused request does not count)."""
    cache = caches["default"]
    try:
        cache.decr(f"{key}:{window}")
    except ValueError:  # expired meanwhile: nothing to take back
        pass


class CountingThrottle(SimpleRateThrottle):
    """A ``SimpleRateThrottle`` that counts (sliding window of two fixed windows)."""

    timer = time.time

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window, into = divmod(now, self.duration)
        current, previous = count_request(self.key, int(window), self.duration)
        weight = 1 - into / self.duration  # share of the previous window still in the last
        seen = current + previous * weight  # `duration` seconds
        if seen <= self.num_requests:
            self._wait = None
            return True
        uncount_request(self.key, int(window))  # as DRF's: only allowed requests count
        # Until enough of the previous window has slid out (or the current one ends).
        excess = seen - self.num_requests
        self._wait = (
            min(excess / previous * self.duration, self.duration - into)
            if previous
            else self.duration - into
        )
        return False

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait is not None else None


class AnonThrottle(CountingThrottle):
    """Per client address, for requests without a user."""

    scope = "anon"
    cache_format = "throttle:%(scope)s:%(ident)s"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserThrottle(CountingThrottle):
    """Per authenticated user (per address for anonymous requests)."""

    scope = "user"
    cache_format = "throttle:%(scope)s:%(ident)s"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            ident = request.user.pk
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ScopedThrottle(CountingThrottle):
    """Per user (or address) and per view's ``throttle_scope`` (e.g. ``auth`` for token views)."""

    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self) -> None:  # the rate depends on the view: read in allow_request
        pass

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, "throttle_scope", None)
        if not self.scope:
            return True
        self.rate = settings.API_THROTTLE_RATES.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            ident = request.user.pk
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
