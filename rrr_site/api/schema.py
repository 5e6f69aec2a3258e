"""Shared OpenAPI pieces: documented error bodies and the schema hooks."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers


class JWTUserAuthenticationScheme(SimpleJWTScheme):
    """Document ``JWTUserAuthentication`` as simplejwt's bearer scheme (``jwtAuth``)."""

    target_class = "rrr_site.api.authentication.JWTUserAuthentication"


_DETAIL = inline_serializer(name="ErrorDetail", fields={"detail": serializers.CharField()})
_FIELD_ERRORS = inline_serializer(
    name="FieldErrors",
    fields={
        "field": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Messages for each bad field"
        )
    },
)

_DESCRIPTIONS = {
    "401": "Not authenticated (no or an invalid/expired token or session)",
    "403": "Authenticated, but the role does not allow it",
    "404": "Not found, or not one of your accounts",
    "429": "Throttled: retry after the `Retry-After` seconds",
}


def error_response(code: str) -> OpenApiResponse:
    """Return the documented ``{"detail": ...}`` error of HTTP ``code``."""
    return OpenApiResponse(
        response=_DETAIL,
        description=_DESCRIPTIONS[code],
        examples=[
            OpenApiExample(
                f"error {code}", value={"detail": _DESCRIPTIONS[code]}, status_codes=[code]
            )
        ],
    )


ERRORS_400 = OpenApiResponse(
    response=_FIELD_ERRORS,
    description="Bad input: each field names its errors",
    examples=[
        OpenApiExample(
            "field errors",
            value={"limit": ["Ensure this value is less than or equal to 1000."]},
            status_codes=["400"],
        )
    ],
)
ERRORS_401 = error_response("401")


def read_errors(*, not_found: bool = False) -> dict:
    """Return the error responses of a read endpoint (400, 401, 403, [404])."""
    errors = {400: ERRORS_400, 401: ERRORS_401, 403: error_response("403")}
    if not_found:
        errors[404] = error_response("404")
    return errors


def only_versioned_paths(endpoints, **kwargs):
    """Keep ``/api/v1/`` in the schema: the unversioned ``/api/`` aliases mirror it exactly."""
    return [e for e in endpoints if e[0].startswith("/api/v1/") or not e[0].startswith("/api/")]
