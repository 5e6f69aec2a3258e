"""WebSocket authentication: a DRF token or JWT access token (React, iOS, scripts), a one-time
ticket, or a session cookie (dashboard).

API clients pass ``?token=<key>`` (a DRF token or a simplejwt access token) in the query string
or an ``Authorization: Token <key>`` (or ``Bearer <key>``) header in the handshake, or
``?ticket=<ticket>`` from ``POST /api/v1/ws/ticket`` (single use, 30 s); they need no ``Origin``
header, because neither is ever sent by a browser on its own. A token or ticket, when given,
decides alone: a bad one is not rescued by a session. A session cookie, which a browser attaches
to any page's request, counts only when the ``Origin`` header names one of our hosts
(``ALLOWED_HOSTS`` or ``CSRF_TRUSTED_ORIGINS``); that stops cross-site WebSocket hijacking.
Consumers close unauthenticated connections with a close code.
"""

from __future__ import annotations

from urllib.parse import ParseResult, parse_qs, urlparse

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

# scope["auth_refused"] when a session was presented from a foreign or missing Origin.
REFUSED_ORIGIN = "origin"


@database_sync_to_async
def _user_for_token(key: str):
    """Return the active user of DRF token or JWT access token ``key``, or AnonymousUser."""
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    user = token.user if token is not None else _user_for_jwt(key)
    if user is None or not user.is_active:
        return AnonymousUser()
    return user


def _user_for_jwt(key: str):
    """Return the user of a valid simplejwt access token, or None."""
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

    if key.count(".") != 2:
        return None
    auth = JWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(key.encode()))
    except (InvalidToken, AuthenticationFailed):
        return None


@database_sync_to_async
def _user_for_ticket(ticket: str):
    """Spend a one-time ticket and return its active user, or AnonymousUser."""
    from django.contrib.auth import get_user_model

    from monitoring.realtime import ticket_redeem

    user_id = ticket_redeem(ticket)
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return user if user is not None and user.is_active else AnonymousUser()


def _ticket_from_scope(scope: dict) -> str:
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return query["ticket"][0] if query.get("ticket") else ""


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
        ticket = _ticket_from_scope(scope)
        if key:
            scope = dict(scope, user=await _user_for_token(key), auth_method="token")
        elif ticket:
            scope = dict(scope, user=await _user_for_ticket(ticket), auth_method="ticket")
        elif getattr(scope.get("user"), "is_authenticated", False):
            if origin_allowed(scope):
                scope = dict(scope, auth_method="session")
            else:
                scope = dict(scope, user=AnonymousUser(), auth_refused=REFUSED_ORIGIN)
        return await self.inner(scope, receive, send)


class WebSocketSessionMiddleware(SessionMiddleware):
    """Channels' session middleware, handing the server's own ``send`` to the application.

    Channels wraps ``send`` to save a modified session on ``http.response.start``, a message a
    WebSocket never sends; the wrapper still reads the lazy session on every frame sent, which
    for a stream client is every message (a measurable share of the fan-out's CPU).
    """

    async def __call__(self, scope, receive, send):
        """Resolve the session into the scope, then call the inner application."""
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - mirrors channels' AuthMiddlewareStack
    """Resolve the session user, then let a token override it and the Origin gate it."""
    return CookieMiddleware(WebSocketSessionMiddleware(AuthMiddleware(TokenAuthMiddleware(inner))))
