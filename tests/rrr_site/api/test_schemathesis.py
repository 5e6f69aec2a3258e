"""schemathesis against the live schema on a real server thread, as an authenticated trader.

Every operation of ``/api/schema/`` gets a bounded number of generated requests (valid and
invalid); no answer may be a server error, and every answer must match the documented schema
(body, content type, status code).
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.rrr_site.api.conftest import World

pytestmark = pytest.mark.django_db(transaction=True)
# The explicit examples and the generated (fuzzing) phase, valid and invalid data; the coverage
# phase (every boundary of every parameter) is left to manual runs to keep CI within budget.
CONFIG = SchemathesisConfig.from_dict(
    {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}}
)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def trader_headers(world: World) -> dict:
    from rest_framework_simplejwt.tokens import RefreshToken

    # Long enough for the whole run; the world's ids give the fuzzer real objects to hit.
    return {"Authorization": f"Bearer {RefreshToken.for_user(world.users['trader']).access_token}"}


@pytest.fixture
def queue_only(monkeypatch):
    """Queue tasks on the ORM broker instead of running them inline (Q_SYNC under pytest):
    the API's part is to queue and answer 202; a fuzzed training or backtest would run for real."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture
def live_schema(live_server, trader_headers, world, queue_only):
    response = requests.get(f"{live_server.url}/api/schema/?format=json", headers=trader_headers,
                            timeout=30)  # fmt: skip
    response.raise_for_status()
    return schemathesis.openapi.from_dict(response.json(), config=CONFIG)


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, live_server, trader_headers):
    response = case.call(base_url=live_server.url, headers=trader_headers, timeout=30)
    case.validate_response(response, checks=CHECKS)
