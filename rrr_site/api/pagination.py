"""Keyset pagination: newest first by (timestamp, id), an opaque cursor, a bounded limit.

A page costs one index range scan whatever its depth (no OFFSET), so the millionth fill is as
cheap to reach as the first.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class KeysetQuery(serializers.Serializer):
    """The ``limit`` and ``cursor`` query parameters."""

    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT, help_text="Rows per page"
    )
    cursor = serializers.CharField(
        required=False, max_length=200, help_text="The `next` cursor of the previous page"
    )


def encode_cursor(ts: datetime, pk: int) -> str:
    """Return the opaque cursor that resumes after the row (ts, pk)."""
    raw = json.dumps([ts.isoformat(), pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Return (ts, pk) of a cursor; raise a 400 ``ValidationError`` for a malformed one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_text, pk = json.loads(raw)
        ts = parse_datetime(ts_text)
        if ts is None or ts.tzinfo is None or type(pk) is not int or not 0 < pk < 2**63:
            raise ValueError(cursor)  # (a bool is an int to isinstance, not to SQL)
        ts.astimezone(UTC)  # OverflowError for a time whose UTC is outside years 1-9999
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationError({"cursor": ["Malformed cursor."]}) from None
    return ts, pk


def keyset_page(
    queryset: QuerySet, *, limit: int, cursor: str | None, ts_field: str = "ts"
) -> tuple[list, str | None]:
    """Return up to ``limit`` rows newest first after ``cursor`` and the next page's cursor."""
    queryset = queryset.order_by(f"-{ts_field}", "-pk")
    if cursor:
        ts, pk = decode_cursor(cursor)
        queryset = queryset.filter(Q(**{f"{ts_field}__lt": ts}) | Q(**{ts_field: ts, "pk__lt": pk}))
    rows = list(queryset[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    if isinstance(last, dict):  # a .values() queryset: it must include ts_field and "id"
        return rows, encode_cursor(last[ts_field], last["id"])
    return rows, encode_cursor(getattr(last, ts_field), last.pk)


def keyset_response(request, rows_data: list, next_cursor: str | None) -> Response:
    """Answer ``{"next": url-or-null, "results": [...]}``, the next URL keeping the filters."""
    next_url = None
    if next_cursor:
        params = request.query_params.copy()
        params["cursor"] = next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{urlencode(params, doseq=True)}")
    return Response({"next": next_url, "results": rows_data})


def keyset_page_serializer(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """Return the documented page shape for ``item`` (for ``extend_schema`` responses)."""
    from drf_spectacular.utils import inline_serializer

    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null"),
            "results": item(many=True),
        },
    )
