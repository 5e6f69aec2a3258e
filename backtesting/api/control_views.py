"""Backtest control: queue a run (single, sweep, walk-forward, Monte Carlo), poll, cancel, and
the HTML report served to the run's owner (staff and admins see every report).

Requests are checked by the ``backtest`` command's own rules (``backtesting.run_control``);
a refusal is a 400 naming the field and writes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from backtesting import run_control
from backtesting import run_selectors as selectors
from backtesting.api import control_serializers as s
from backtesting.api.read_views import BacktestListView
from backtesting.report_paths import report_script_path
from backtesting.services import BacktestInputError
from rrr_site.api.accounts import visible_accounts
from rrr_site.api.permissions import IsTrader, IsViewer, ViewerReadsTraderWrites
from rrr_site.api.schema import error_response, read_errors

FLAG = re.compile(r"--([a-z][a-z-]*)")
FLAG_FIELDS = {"param": "params", "capital": "capital", "symbols": "symbols"}
NO_REPORT = "No such report."

QUEUED = OpenApiResponse(
    response=s.BacktestQueuedSerializer,
    description="Queued for a django-q2 worker; poll `status_url` (or the run)",
    examples=[
        OpenApiExample(
            "queued",
            value={
                "id": 12,
                "status": "pending",
                "task": "4f1c0e7a...",
                "status_url": "http://127.0.0.1:8000/api/v1/backtests/12/status",
            },
        )  # fmt: skip
    ],
)
CONFLICT = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="The run has already finished",
    examples=[OpenApiExample("finished", value={"detail": "backtest #12 is already completed"})],
)


def input_error(exc: BacktestInputError) -> ValidationError:
    """Return the 400 for a refusal of ``backtest``'s rules, under the field it names."""
    message = " ".join(str(exc).split())
    flags = [m.replace("-", "_") for m in FLAG.findall(message)]
    text = FLAG.sub(lambda m: m.group(1).replace("-", "_"), message)
    fields = s.BacktestCreateSerializer().fields
    for flag in flags:
        field = FLAG_FIELDS.get(flag, flag)
        if field in fields:
            return ValidationError({field: [text]})
    if message.startswith("stops:"):
        return ValidationError({"stop_loss": [text]})
    return ValidationError({"non_field_errors": [text]})


def _changes(request, data: dict) -> dict:
    """Return ``backtest``'s option values (dest names) for the validated body."""
    changes = {
        "strategy": data["strategy"],
        "symbols": ",".join(data["symbols"]),
        "timeframe": data["timeframe"],
        "param": [f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                  for k, v in data.get("params", {}).items()],
        "fill": data["fill"],
        "no_risk": data["no_risk"],
        "source": data["source"],
        "optimize": data.get("optimize"),
        "space": data.get("space", []),
        "objective": data["objective"],
        "trials": data["trials"],
        "train_bars": data.get("train_bars"),
        "test_bars": data.get("test_bars"),
        "anchored": data["anchored"],
        "montecarlo": data["montecarlo"],
    }  # fmt: skip
    for key in ("fees_bps", "slippage_bps", "capital", "periods_per_year"):
        if data.get(key) is not None:
            changes[key] = str(data[key])
    for key in ("stop_loss", "trailing_stop", "atr_stop", "max_hold"):
        if data.get(key) is not None:
            changes[key] = data[key]
    named = data.get("risk_account")
    if named:
        if not visible_accounts(request).filter(name=named).exists():
            raise ValidationError({"risk_account": ["Not one of your accounts."]})
        changes["risk_account"] = named
    return changes


def _run_or_404(pk: int):
    run = selectors.backtest_run(pk=pk)
    if run is None:
        raise NotFound("No such backtest.")
    return run


class BacktestsView(BacktestListView):
    """Backtest runs, newest first (GET, viewers); queue a new run (POST, traders)."""

    permission_classes = [ViewerReadsTraderWrites]

    @extend_schema(
        tags=["backtests"],
        operation_id="backtests_create",
        request=s.BacktestCreateSerializer,
        responses={202: QUEUED, **read_errors()},
        examples=[
            OpenApiExample(
                "one run on the simulated market",
                value={
                    "strategy": "sma_cross",
                    "symbols": ["BTC-USD"],
                    "timeframe": "1h",
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-03-01T00:00:00Z",
                    "params": {"fast": 10, "slow": 30},
                    "source": "sim",
                    "montecarlo": 200,
                },
                request_only=True,
            ),
            OpenApiExample(
                "grid search",
                value={
                    "strategy": "sma_cross",
                    "symbols": ["BTC-USD"],
                    "timeframe": "1h",
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-03-01T00:00:00Z",
                    "source": "sim",
                    "optimize": "grid",
                    "space": ["fast=5:15:5", "slow=30:50:10"],
                    "objective": "sharpe",
                },
                request_only=True,
            ),
            OpenApiExample(
                "walk-forward",
                value={
                    "strategy": "sma_cross",
                    "symbols": ["BTC-USD"],
                    "timeframe": "1h",
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-03-01T00:00:00Z",
                    "source": "sim",
                    "optimize": "walkforward",
                    "space": ["fast=5:15:5"],
                    "train_bars": 500,
                    "test_bars": 200,
                },
                request_only=True,
            ),
        ],  # fmt: skip
    )
    def post(self, request):
        body = s.BacktestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        changes = _changes(request, data)
        try:
            run, task = run_control.backtest_submit(
                changes=changes, start=data["start"], end=data["end"], owner=request.user,
                allow_in_sample=data["allow_in_sample"], name=data.get("name", ""),
            )  # fmt: skip
        except BacktestInputError as exc:
            raise input_error(exc) from None
        url = request.build_absolute_uri(f"/api/v1/backtests/{run.pk}/status")
        return Response(
            {"id": run.pk, "status": run.status, "task": task, "status_url": url},
            status=status.HTTP_202_ACCEPTED,
        )


class BacktestStatusView(APIView):
    """A run's status and progress (a sweep's trials counted), without its results."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["backtests"],
        responses={200: s.BacktestStateSerializer, **read_errors(not_found=True)},
        examples=[
            OpenApiExample(
                "running sweep",
                value={
                    "id": 12,
                    "status": "running",
                    "progress": 0.0,
                    "optimize": "grid",
                    "trials": 9,
                    "trials_done": 4,
                    "error": "",
                    "created_at": "2026-01-02T10:00:00Z",
                    "started_at": "2026-01-02T10:00:01Z",
                    "finished_at": None,
                },
                response_only=True,
            )
        ],  # fmt: skip
    )
    def get(self, request, pk: int):
        state = selectors.backtest_state(pk=pk)
        if state is None:
            raise NotFound("No such backtest.")
        return Response(s.BacktestStateSerializer(state).data)


class BacktestCancelView(APIView):
    """Cancel a queued or running run (its owner, staff or an admin; audited)."""

    permission_classes = [IsTrader]

    @extend_schema(
        tags=["backtests"],
        request=None,
        responses={
            200: s.BacktestStateSerializer,
            409: CONFLICT,
            **read_errors(not_found=True),
        },
    )
    def post(self, request, pk: int):
        run = _run_or_404(pk)
        if not run_control.may_control(request.user, run):
            raise NotFound("No such backtest.")  # another user's run: not probed
        try:
            run_control.backtest_cancel(run=run, actor=request.user)
        except run_control.RunFinished as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.BacktestStateSerializer(selectors.backtest_state(pk=pk)).data)


class BacktestReportView(APIView):
    """The run's offline HTML report, for its owner (staff and admins: every run's)."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["backtests"],
        responses={
            (200, "text/html"): OpenApiResponse(
                response=OpenApiTypes.STR, description="The self-contained HTML report"
            ),
            401: read_errors()[401],
            403: error_response("403"),
            404: error_response("404"),
        },
    )
    def get(self, request, pk: int):
        run = selectors.backtest_run(pk=pk)
        if run is None or not run.report_path or not run_control.may_control(request.user, run):
            raise NotFound(NO_REPORT)
        root = Path(settings.REPORTS_DIR).resolve()
        path = Path(run.report_path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFound(NO_REPORT)
        return FileResponse(path.open("rb"), content_type="text/html; charset=utf-8")


class BacktestReportScriptView(APIView):
    """plotly.js beside the run's report (the page loads it by a relative URL), for its readers."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["backtests"],
        operation_id="backtests_report_script_retrieve",
        responses={
            (200, "text/javascript"): OpenApiResponse(
                response=OpenApiTypes.STR, description="plotly.js, as the report references it"
            ),
            401: read_errors()[401],
            403: error_response("403"),
            404: error_response("404"),
        },
    )
    def get(self, request, pk: int, version: str):
        run = selectors.backtest_run(pk=pk)
        if run is None or not run.report_path or not run_control.may_control(request.user, run):
            raise NotFound(NO_REPORT)
        path = report_script_path(run.report_path, f"plotly-{version}.min.js")
        if path is None:
            raise NotFound(NO_REPORT)
        return FileResponse(path.open("rb"), content_type="text/javascript; charset=utf-8")
