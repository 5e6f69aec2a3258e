"""Sign-in attempts through the dashboard's and the admin's login forms share the API's budget.

The token endpoint allows ``API_THROTTLE_AUTH`` (20/minute) per client; without this, the two
HTML login forms took any number of password guesses. A POST to either form is counted under the
same ``auth`` scope and key as ``POST /api/v1/auth/token``, so an address gets one budget of
guesses whichever door it knocks on; over it, 429 with ``Retry-After`` and nothing is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

from rrr_site.api.throttling import ScopedThrottle


class _AuthScope:
    """Stands for a view with ``throttle_scope = "auth"`` (the token views' scope)."""

    throttle_scope = "auth"


def login_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view: its POSTs count against the ``auth`` rate; over it, answer 429."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            throttle = ScopedThrottle()
            if not throttle.allow_request(request, _AuthScope):
                wait = throttle.wait() or 60
                response = HttpResponse(
                    f"Too many sign-in attempts from this address; try again in {wait} s.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapped
