"""Model control over the API: admins activate/deactivate (audited, the admin's service); traders
queue training (202, django-q runs synchronously in tests) and anyone with a role polls it."""

from __future__ import annotations

import pytest

from models_ml.models import MLModel, TrainingRun
from monitoring.models import AuditLog

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

TINY = {
    "model_type": "cnn",
    "symbols": ["BTC-USD"],
    "timeframe": "1m",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-01-03T02:00:00Z",
    "name": "api-cnn",
    "params": {"epochs": 1, "folds": 2, "window": 32, "source": "sim",
               "hparams": {"channels": 8, "n_layers": 2}},
}  # fmt: skip


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"


def _versions():
    edge = {"verdict": "edge", "has_edge": True}
    one = MLModel.objects.create(
        name="btc", model_type="lstm", version=1, active=True, metrics=edge
    )
    two = MLModel.objects.create(name="btc", model_type="lstm", version=2, metrics=edge)
    flat = MLModel.objects.create(
        name="btc", model_type="lstm", version=3, metrics={"verdict": "no edge", "has_edge": False}
    )
    return one, two, flat


def test_an_admin_activates_a_version_its_sibling_goes_off_and_both_are_audited(as_role, world):
    one, two, _ = _versions()
    answer = as_role("admin").post(f"/api/v1/ai/models/{two.pk}/activate", {}, format="json")
    assert answer.status_code == 200 and answer.json()["active"] is True
    one.refresh_from_db()
    assert not one.active
    actions = list(AuditLog.objects.order_by("pk").values_list("action", "actor__username"))
    assert actions == [("ml_model.deactivate", "admin-role"), ("ml_model.activate", "admin-role")]
    off = as_role("admin").post(f"/api/v1/ai/models/{two.pk}/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False


def test_a_version_without_edge_needs_force(as_role):
    _, _, flat = _versions()
    refused = as_role("admin").post(f"/api/v1/ai/models/{flat.pk}/activate", {}, format="json")
    assert refused.status_code == 409 and "no edge" in refused.json()["detail"]
    flat.refresh_from_db()
    assert not flat.active
    forced = as_role("admin").post(
        f"/api/v1/ai/models/{flat.pk}/activate", {"force": True}, format="json"
    )
    assert forced.status_code == 200 and forced.json()["active"]
    assert AuditLog.objects.get(action="ml_model.activate").after["forced"] is True


def test_only_admins_activate(as_role):
    _, two, _ = _versions()
    for role, code in (("anonymous", 401), ("viewer", 403), ("trader", 403)):
        answer = as_role(role).post(f"/api/v1/ai/models/{two.pk}/activate", {}, format="json")
        assert answer.status_code == code
    assert as_role("admin").post("/api/v1/ai/models/999999/activate").status_code == 404
    bad = as_role("admin").post(
        f"/api/v1/ai/models/{two.pk}/activate", {"force": "maybe"}, format="json"
    )
    assert bad.status_code == 400 and "force" in bad.json()
    two.refresh_from_db()
    assert not two.active and not AuditLog.objects.exists()


def test_a_trader_queues_training_and_a_viewer_polls_it(as_role):
    queued = as_role("trader").post("/api/v1/ai/training", TINY, format="json")
    assert queued.status_code == 202, queued.json()
    run = TrainingRun.objects.get(pk=queued.json()["id"])
    polled = as_role("viewer").get(queued.json()["status_url"]).json()
    assert polled["status"] == "completed" and polled["model"] == run.model_id
    model = MLModel.objects.get(pk=run.model_id)
    assert model.name == "api-cnn" and not model.active  # training never activates


@pytest.mark.parametrize(
    "change,field",
    [
        ({"model_type": "oracle"}, "model_type"),
        ({"symbols": []}, "symbols"),
        ({"end": "2024-01-01T00:10:00Z"}, "params"),  # too few bars for the window and folds
        ({"params": {"epochs": 0}}, "params"),
        ({"params": {"moon": 1}}, "params"),
        ({"timeframe": "9q"}, "timeframe"),
        ({"name": "../etc"}, "name"),
    ],
)
def test_bad_training_input_is_a_400_and_writes_nothing(as_role, change, field):
    answer = as_role("trader").post("/api/v1/ai/training", {**TINY, **change}, format="json")
    assert answer.status_code == 400 and field in answer.json(), answer.json()
    assert not TrainingRun.objects.exists()
    assert as_role("viewer").post("/api/v1/ai/training", TINY, format="json").status_code == 403
