"""Monitoring endpoints: a one-time ticket that opens the WebSocket stream."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.realtime import TICKET_TTL, ticket_issue
from rrr_site.api.permissions import IsViewer
from rrr_site.api.schema import ERRORS_401, error_response


class StreamTicketView(APIView):
    """Issue a one-time ticket for ``/ws/v1/stream?ticket=...`` (single use, valid 30 s).

    For clients that cannot put a token in a WebSocket URL they log, or that authenticate with
    a session: the ticket stands for the caller once, and the stream sees what they may see.
    """

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["stream"],
        request=None,
        responses={
            201: inline_serializer(
                name="StreamTicket",
                fields={
                    "ticket": serializers.CharField(),
                    "expires_in": serializers.IntegerField(help_text="seconds"),
                    "url": serializers.CharField(help_text="the stream's path with the ticket"),
                },
            ),
            401: ERRORS_401,
            403: error_response("403"),
        },
        examples=[
            OpenApiExample(
                "ticket",
                value={
                    "ticket": "q3Zk...",
                    "expires_in": 30,
                    "url": "/ws/v1/stream?ticket=q3Zk...",
                },
                response_only=True,
            )
        ],
    )
    def post(self, request):
        ticket = ticket_issue(user=request.user)
        return Response(
            {"ticket": ticket, "expires_in": TICKET_TTL, "url": f"/ws/v1/stream?ticket={ticket}"},
            status=201,
        )
