"""Model control: activate/deactivate a version (admins; the audited service the admin uses)
and queue a training run (traders; 202 with the run id, poll it).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from models_ml import services
from models_ml.api import control_serializers as s
from models_ml.api.read_serializers import ModelVersionSerializer
from models_ml.models import MLModel, TrainingRun
from rrr_site.api.permissions import IsAdminRole, IsTrader, IsViewer
from rrr_site.api.schema import read_errors

NO_EDGE = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="Refused: the version has no edge out of sample (send force=true to override)",
    examples=[OpenApiExample("no edge", value={"detail": "btc-lstm v3 has no edge ..."})],
)
QUEUED = OpenApiResponse(
    response=s.TrainingQueuedSerializer,
    description="Queued for a django-q2 worker; poll `status_url`",
    examples=[
        OpenApiExample(
            "queued",
            value={
                "id": 7,
                "status": "pending",
                "task": "9b2e...",
                "status_url": "http://127.0.0.1:8000/api/v1/ai/training/7",
            },
        )  # fmt: skip
    ],
)
FIELD_HINTS = (
    ("model name", "name"),
    ("model type", "model_type"),
    ("timeframe", "timeframe"),
    ("symbol", "symbols"),
)


def _model_or_404(pk: int) -> MLModel:
    model = MLModel.objects.filter(pk=pk).first()
    if model is None:
        raise NotFound("No such model version.")
    return model


class ModelActivateView(APIView):
    """Make this version the active one of its name (its siblings are deactivated); audited."""

    permission_classes = [IsAdminRole]

    @extend_schema(
        tags=["ai"],
        request=s.ActivateSerializer,
        responses={200: ModelVersionSerializer, 409: NO_EDGE, **read_errors(not_found=True)},
        examples=[OpenApiExample("forced", value={"force": True}, request_only=True)],
    )
    def post(self, request, pk: int):
        body = s.ActivateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        model = _model_or_404(pk)
        try:
            services.model_activate(
                model=model, actor=request.user, force=body.validated_data["force"]
            )
        except services.ModelWithoutEdge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        model.refresh_from_db()
        return Response(ModelVersionSerializer(model).data)


class ModelDeactivateView(APIView):
    """Switch this version off (audited)."""

    permission_classes = [IsAdminRole]

    @extend_schema(
        tags=["ai"],
        request=None,
        responses={200: ModelVersionSerializer, **read_errors(not_found=True)},
    )
    def post(self, request, pk: int):
        model = services.model_deactivate(model=_model_or_404(pk), actor=request.user)
        return Response(ModelVersionSerializer(model).data)


class TrainingCreateView(APIView):
    """Queue a training run (checked as ``manage.py train`` checks it; nothing written if not)."""

    permission_classes = [IsTrader]

    @extend_schema(
        tags=["ai"],
        request=s.TrainingCreateSerializer,
        responses={202: QUEUED, **read_errors()},
        examples=[
            OpenApiExample(
                "LSTM on the simulated market",
                value={
                    "model_type": "lstm",
                    "symbols": ["BTC-USD"],
                    "timeframe": "1h",
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-03-01T00:00:00Z",
                    "params": {"epochs": 5, "folds": 2, "window": 32, "source": "sim"},
                },
                request_only=True,
            )
        ],  # fmt: skip
    )
    def post(self, request):
        from django_q.tasks import async_task

        body = s.TrainingCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            name = services.check_model_name(data["name"]) if data.get("name") else None
            run = services.training_run_start(
                model_type=data["model_type"], symbols=data["symbols"],
                timeframe=data["timeframe"], start=data["start"], end=data["end"],
                params=data.get("params"),
            )  # fmt: skip
        except services.TrainingRequestError as exc:
            message = " ".join(str(exc).split())
            field = next((f for hint, f in FIELD_HINTS if hint in message), "params")
            raise ValidationError({field: [message]}) from None
        task = async_task("models_ml.tasks.train_task", run.pk, name, task_name=f"train-{run.pk}")
        run.refresh_from_db()  # a synchronous queue (tests, no cluster) has already run it
        url = request.build_absolute_uri(f"/api/v1/ai/training/{run.pk}")
        return Response(
            {"id": run.pk, "status": run.status, "task": task, "status_url": url},
            status=status.HTTP_202_ACCEPTED,
        )


class TrainingRunView(APIView):
    """One training run: status, progress, metrics and the version it registered."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=["ai"],
        responses={200: s.TrainingRunSerializer, **read_errors(not_found=True)},
    )
    def get(self, request, pk: int):
        run = TrainingRun.objects.filter(pk=pk).first()
        if run is None:
            raise NotFound("No such training run.")
        return Response(s.TrainingRunSerializer(run).data)
