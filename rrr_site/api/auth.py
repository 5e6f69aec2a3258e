"""Token endpoints for apps: obtain (username/password), refresh, revoke; and who am I.

simplejwt issues a short-lived access token and a refresh token; a refresh rotates the pair and
blacklists the old refresh token, and revoke blacklists one (log-out). The browser uses the
Django session (with CSRF) instead; DRF's permanent tokens stay for the WebSockets.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views

from rrr_site.api.accounts import visible_accounts
from rrr_site.api.permissions import IsViewer
from rrr_site.api.roles import role_of
from rrr_site.api.schema import ERRORS_400, ERRORS_401, error_response

_PAIR = inline_serializer(
    name="TokenPair",
    fields={"access": serializers.CharField(), "refresh": serializers.CharField()},
)
_EXAMPLE_PAIR = OpenApiExample(
    "pair", value={"access": "eyJhbGciOi...", "refresh": "eyJhbGciOi..."}, response_only=True
)


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Exchange a username and password for an access and a refresh token."""

    permission_classes = [AllowAny]  # the credentials are the authentication
    throttle_scope = "auth"

    @extend_schema(
        tags=["auth"],
        responses={200: _PAIR, 400: ERRORS_400, 401: ERRORS_401, 429: error_response("429")},
        examples=[
            OpenApiExample(
                "login", value={"username": "alice", "password": "secret"}, request_only=True
            ),
            _EXAMPLE_PAIR,
        ],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRefreshView(jwt_views.TokenRefreshView):
    """Exchange a refresh token for a new pair (the old refresh token is blacklisted)."""

    permission_classes = [AllowAny]  # the refresh token is the authentication
    throttle_scope = "auth"

    @extend_schema(
        tags=["auth"],
        responses={200: _PAIR, 400: ERRORS_400, 401: ERRORS_401, 429: error_response("429")},
        examples=[_EXAMPLE_PAIR],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRevokeView(jwt_views.TokenBlacklistView):
    """Revoke a refresh token (log out): it can never be refreshed again."""

    permission_classes = [AllowAny]  # the refresh token is the authentication
    throttle_scope = "auth"

    @extend_schema(
        tags=["auth"],
        responses={
            200: inline_serializer(name="TokenRevoked", fields={}),
            400: ERRORS_400,
            401: ERRORS_401,
            429: error_response("429"),
        },
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class MeView(APIView):
    """The authenticated user, their role and the accounts they may see."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["auth"],
        responses={
            200: inline_serializer(
                name="Me",
                fields={
                    "username": serializers.CharField(),
                    "role": serializers.ChoiceField(choices=["viewer", "trader", "admin"]),
                    "accounts": inline_serializer(
                        name="MeAccount",
                        fields={"id": serializers.IntegerField(), "name": serializers.CharField()},
                        many=True,
                    ),
                },
            ),
            401: ERRORS_401,
            403: error_response("403"),
        },
        examples=[
            OpenApiExample(
                "trader",
                value={
                    "username": "alice",
                    "role": "trader",
                    "accounts": [{"id": 1, "name": "paper"}],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        accounts = visible_accounts(request).values("id", "name")
        return Response(
            {
                "username": request.user.get_username(),
                "role": role_of(request.user).group,
                "accounts": list(accounts),
            }
        )
