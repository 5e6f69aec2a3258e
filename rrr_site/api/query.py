"""Parse a request's query string with a serializer: a 400 with field errors, never a 500."""

from __future__ import annotations

from rest_framework import serializers


def parse_query(request, serializer_class: type[serializers.Serializer]) -> dict:
    """Return the validated query parameters; raise a 400 ``ValidationError`` otherwise."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
