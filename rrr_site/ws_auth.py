"""WebSocket authentication: session cookies (dashboard) or a DRF token (React, iOS).

API clients pass ``?token=<key>`` in the query string or an ``Authorization: Token <key>`` header in
the handshake. Consumers close unauthenticated connections.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for_token(key: str):
    """Return the user owning token ``key``, or AnonymousUser."""
    from rest_framework.authtoken.models import Token

    try:
        return Token.objects.select_related("user").get(key=key).user
    except Token.DoesNotExist:
        return AnonymousUser()


def _token_from_scope(scope: dict) -> str:
    """Extract a token from the query string or the Authorization header."""
    query = parse_qs(scope.get("query_string", b"").decode())
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, key = value.decode().partition(" ")
            if kind.lower() in {"token", "bearer"}:
                return key.strip()
    return ""


class TokenAuthMiddleware:
    """Set ``scope['user']`` from a token when the session did not authenticate."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        """Authenticate the handshake, then call the inner application."""
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            key = _token_from_scope(scope)
            if key:
                scope = dict(scope, user=await _user_for_token(key))
        return await self.inner(scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - mirrors channels' AuthMiddlewareStack
    """Session auth first, then token auth."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
