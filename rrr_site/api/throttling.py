"""Throttles whose rates are read from settings on each request (so they follow the settings).

DRF's own classes copy ``DEFAULT_THROTTLE_RATES`` once at import; ours look up
``settings.API_THROTTLE_RATES[scope]`` every time, so the environment and tests decide.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle


class _SettingsRate:
    scope: str

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_SettingsRate, AnonRateThrottle):
    """Per client address, for requests without a user."""

    scope = "anon"


class UserThrottle(_SettingsRate, UserRateThrottle):
    """Per authenticated user."""

    scope = "user"


class ScopedThrottle(ScopedRateThrottle):
    """Per user (or address) and per view's ``throttle_scope`` (e.g. ``auth`` for token views)."""

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = settings.API_THROTTLE_RATES.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)
