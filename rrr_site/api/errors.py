"""DRF's exception handler, plus clear JSON answers to the request errors Django raises itself."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)
DATABASE_RETRY_SECONDS = 1
DATABASE_UNAVAILABLE = (
    "The database is unavailable; retry shortly (a retried order with the same "
    "Idempotency-Key is placed at most once)."
)


def exception_handler(exc, context):
    """Answer an oversized body with 413, any other refused request with 400 and a lost or
    locked database with 503 (``Retry-After``), in JSON.

    Django raises these while DRF reads ``request.data``; DRF's own handler passes them on, and
    Django then answered 400 with an HTML page (its debug page in development).
    """
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"Request body too large (over {limit} bytes)."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": str(exc) or "Bad request."}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, OperationalError | InterfaceError):
        return _database_unavailable(exc, context)
    return drf_exception_handler(exc, context)


def _database_unavailable(exc: Exception, context: dict) -> Response:
    """Answer a lost or locked database with 503 in JSON (was a 500: the debug page in
    development), logged with its traceback; the transaction it broke is rolled back."""
    view = context.get("view")
    logger.error("database unavailable in %s", type(view).__name__, exc_info=exc)
    set_rollback()
    return Response(
        {"detail": DATABASE_UNAVAILABLE},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
    )
