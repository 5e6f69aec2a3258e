"""Read endpoints of the AI: decisions (predictions) and model versions.

Models and their predictions are about symbols, not accounts: every viewer may read them.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.views import APIView

from models_ml import prediction_selectors as selectors
from models_ml.api import read_serializers as s
from rrr_site.api.pagination import keyset_page, keyset_page_serializer, keyset_response
from rrr_site.api.permissions import IsViewer
from rrr_site.api.query import parse_query
from rrr_site.api.schema import read_errors


class DecisionsView(APIView):
    """The models' predictions, newest first; filter by model, symbol, kind and time."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["ai"],
        parameters=[s.DecisionsQuery],
        responses={
            200: keyset_page_serializer("DecisionPage", s.DecisionSerializer),
            **read_errors(),
        },
        examples=[
            OpenApiExample(
                "page",
                value={"next": None, "results": [{
                    "id": 9, "model": 2, "model_name": "btc-direction", "model_version": 3,
                    "symbol": "BTC-USD", "ts": "2026-01-02T10:00:00Z", "kind": "direction",
                    "horizon": 1, "value": 0.61, "confidence": 0.22,
                }]},  # fmt: skip
                response_only=True,
            )
        ],
    )
    def get(self, request):
        query = parse_query(request, s.DecisionsQuery)
        keys = ("model", "model_name", "symbol", "kind", "start", "end")
        filters = {k: query.get(k) for k in keys}
        rows, cursor = keyset_page(
            selectors.predictions(**filters), limit=query["limit"], cursor=query.get("cursor")
        )
        return keyset_response(request, s.DecisionSerializer(rows, many=True).data, cursor)


class ModelsView(APIView):
    """Model versions, newest first, with out-of-sample metrics beside the baselines."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["ai"],
        parameters=[s.ModelsQuery],
        responses={
            200: keyset_page_serializer("ModelPage", s.ModelVersionSerializer),
            **read_errors(),
        },
    )
    def get(self, request):
        query = parse_query(request, s.ModelsQuery)
        rows, cursor = keyset_page(
            selectors.model_registry(name=query.get("name"), active=query["active"]),
            limit=query["limit"],
            cursor=query.get("cursor"),
            ts_field="created_at",
        )
        return keyset_response(request, s.ModelVersionSerializer(rows, many=True).data, cursor)
