"""WebSocket authentication: a DRF token (React, iOS, scripts) or a session cookie (dashboard).

API clients pass ``?token=<key>`` in the query string or an ``Authorization: Token <key>`` (or
``Bearer <key>``) header in the handshake; they need no ``Origin`` header, because a token is never
sent by a browser on its own. A token, when given, decides alone: a bad one is not rescued by a
session. A session cookie, which a browser attaches to any page's request, counts only when the
``Origin`` header names one of our hosts (``ALLOWED_HOSTS`` or ``CSRF_TRUSTED_ORIGINS``); that stops
cross-site WebSocket hijacking. Consumers close unauthenticated connections with a close code.
"""

from __future__ import annotations

from urllib.parse import ParseResult, parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

# scope["auth_refused"] when a session was presented from a foreign or missing Origin.
REFUSED_ORIGIN = "origin"


@database_sync_to_async
def _user_for_token(key: str):
    """Return the active user owning token ``key``, or AnonymousUser."""
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


def _token_from_scope(scope: dict) -> str:
    """Extract a token from the query string or the Authorization header."""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, key = value.decode("latin1").partition(" ")
            if kind.lower() in {"token", "bearer"}:
                return key.strip()
    return ""


def _origin(scope: dict) -> ParseResult | None:
    """Return the parsed ``Origin`` header of the handshake, or None."""
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return urlparse(value.decode("latin1"))
    return None


def _allowed_origins() -> list[str]:
    """Return the origin patterns a session-authenticated WebSocket may come from."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts + list(settings.CSRF_TRUSTED_ORIGINS)


def origin_allowed(scope: dict) -> bool:
    """Say whether the handshake's Origin is one of this site's (a missing Origin is not)."""
    origin = _origin(scope)
    if origin is None:
        return False
    return OriginValidator(None, _allowed_origins()).valid_origin(origin)


class TokenAuthMiddleware:
    """Set ``scope['user']`` from a token if one is given, else keep a same-origin session."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        """Authenticate the handshake, then call the inner application."""
        key = _token_from_scope(scope)
        if key:
            scope = dict(scope, user=await _user_for_token(key), auth_method="token")
        elif getattr(scope.get("user"), "is_authenticated", False):
            if origin_allowed(scope):
                scope = dict(scope, auth_method="session")
            else:
                scope = dict(scope, user=AnonymousUser(), auth_refused=REFUSED_ORIGIN)
        return await self.inner(scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - mirrors channels' AuthMiddlewareStack
    """Resolve the session user, then let a token override it and the Origin gate it."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
