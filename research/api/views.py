"""Research endpoints: runs and findings for viewers; queue a study or a finding's backtest
(traders). Research reads market data, not account data: every viewer may read every run.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from research import selectors
from research.api import serializers as s
from research.engine.errors import ResearchInputError
from rrr_site.api.pagination import keyset_page, keyset_page_serializer, keyset_response
from rrr_site.api.permissions import IsTrader, IsViewer, ViewerReadsTraderWrites
from rrr_site.api.query import parse_query
from rrr_site.api.schema import ERRORS_400, read_errors

QUEUED = OpenApiResponse(
    response=s.ResearchQueuedSerializer,
    description="Queued for a django-q2 worker; poll the run (or the backtests list)",
    examples=[OpenApiExample("queued", value={"id": 12, "status": "pending", "task": "4f1c..."})],
)


def _input_error(exc: ResearchInputError) -> ValidationError:
    return ValidationError({"non_field_errors": [str(exc)]})


class RunListView(APIView):
    """Research runs, newest first (GET, viewers); queue a new study (POST, traders)."""

    permission_classes = [ViewerReadsTraderWrites]

    @extend_schema(
        tags=["research"],
        operation_id="research_runs_list",
        parameters=[s.ResearchRunListQuery],
        responses={
            200: keyset_page_serializer("ResearchRunPage", s.ResearchRunSerializer),
            **read_errors(),
        },
    )
    def get(self, request):
        query = parse_query(request, s.ResearchRunListQuery)
        runs = selectors.research_runs(status=query.get("status"), kind=query.get("kind"))
        rows, cursor = keyset_page(
            runs, limit=query["limit"], cursor=query.get("cursor"), ts_field="created_at"
        )
        return keyset_response(request, s.ResearchRunSerializer(rows, many=True).data, cursor)

    @extend_schema(
        tags=["research"],
        request=s.ResearchRunCreateSerializer,
        responses={202: QUEUED, **read_errors()},
        examples=[
            OpenApiExample(
                "planted pair on the simulated market",
                value={
                    "study": "pairs",
                    "symbols": ["BTC-USD", "ETH-USD", "SOL-USD"],
                    "timeframe": "1h",
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-03-24T00:00:00Z",
                    "source": "sim",
                    "plant_pairs": ["ETH-USD:BTC-USD:1.2:12:0.02"],
                },
                request_only=True,
            )  # fmt: skip
        ],
    )
    def post(self, request):
        from research import services as research_services  # scipy, statsmodels, arch: ~2 s

        body = s.ResearchRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        where = {k: data.pop(k) for k in ("study", "symbols", "timeframe", "start", "end")}
        try:
            params = research_services.study_params(where["study"], **data)
            run = research_services.research_run_create(**where, params=params)
        except ResearchInputError as exc:
            raise _input_error(exc) from None
        task = research_services.research_run_enqueue(run=run)
        return Response(
            {"id": run.pk, "status": "pending", "task": task}, status=status.HTTP_202_ACCEPTED
        )


class RunDetailView(APIView):
    """One run with its findings, most significant first."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["research"],
        responses={200: s.ResearchRunDetailSerializer, **read_errors(not_found=True)},
    )
    def get(self, request, pk: int):
        run = selectors.research_run(pk=pk)
        if run is None:
            raise NotFound("No such research run.")
        _, run.api_findings = selectors.run_with_findings(run.pk)
        return Response(s.ResearchRunDetailSerializer(run).data)


class FindingListView(APIView):
    """Findings, newest first, by run and significance."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["research"],
        operation_id="research_findings_list",
        parameters=[s.ResearchFindingListQuery],
        responses={
            200: keyset_page_serializer("FindingPage", s.ResearchFindingSerializer),
            **read_errors(),
        },
    )
    def get(self, request):
        query = parse_query(request, s.ResearchFindingListQuery)
        rows = selectors.findings(run=query.get("run"), significant=query.get("significant"))
        page, cursor = keyset_page(
            rows, limit=query["limit"], cursor=query.get("cursor"), ts_field="created_at"
        )
        return keyset_response(request, s.ResearchFindingSerializer(page, many=True).data, cursor)


class FindingDetailView(APIView):
    """One finding."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["research"],
        responses={200: s.ResearchFindingSerializer, **read_errors(not_found=True)},
    )
    def get(self, request, pk: int):
        finding = selectors.finding(pk=pk)
        if finding is None:
            raise NotFound("No such finding.")
        return Response(s.ResearchFindingSerializer(finding).data)


class FindingBacktestView(APIView):
    """Queue the backtest of the strategy a finding proposes (e.g. a cointegrated pair)."""

    permission_classes = [IsTrader]

    @extend_schema(
        tags=["research"],
        request=s.FindingBacktestRequestSerializer,
        responses={202: QUEUED, 400: ERRORS_400, **read_errors(not_found=True)},
    )
    def post(self, request, pk: int):
        from research import services as research_services  # as above: imported when used

        body = s.FindingBacktestRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding = selectors.finding(pk=pk)
        if finding is None:
            raise NotFound("No such finding.")
        try:
            task = research_services.finding_backtest_enqueue(
                finding=finding,
                start=body.validated_data.get("start"),
                end=body.validated_data.get("end"),
            )
        except ResearchInputError as exc:
            raise _input_error(exc) from None
        return Response(
            {"id": finding.pk, "status": "queued", "task": task},
            status=status.HTTP_202_ACCEPTED,
        )
