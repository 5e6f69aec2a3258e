"""Model activation and deactivation reach the stream's ``system`` channel (the Models page
follows both live)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from models_ml.services import model_activate, model_deactivate
from monitoring.realtime import group_of
from tests.factories import MLModelFactory

pytestmark = pytest.mark.django_db


def test_activation_and_deactivation_are_published(django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    inbox = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_of("system"), inbox)
    model = MLModelFactory(name="btc-direction")
    with django_capture_on_commit_callbacks(execute=True):
        model_activate(model=model, actor=None, force=True)
    with django_capture_on_commit_callbacks(execute=True):
        model_deactivate(model=model, actor=None)
    got = [async_to_sync(layer.receive)(inbox) for _ in range(2)]
    assert [(m["channel"], m["kind"]) for m in got] == [("system", "model")] * 2
    assert [(m["data"]["name"], m["data"]["version"], m["data"]["active"]) for m in got] == [
        ("btc-direction", model.version, True),
        ("btc-direction", model.version, False),
    ]
