"""DRF's exception handler, plus clear JSON answers to the request errors Django raises itself."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """Answer an oversized body with 413 and any other refused request with 400, in JSON.

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
    return drf_exception_handler(exc, context)
