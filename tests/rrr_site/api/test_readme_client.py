"""The README's typed client works against a real server: log in, read, place a paper order."""

from __future__ import annotations

import re
import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)


def readme_client_source() -> str:
    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (source,) = [b for b in blocks if "class RRRClient" in b]
    return source


def test_readme_client_logs_in_reads_and_orders(live_server, paper):
    from django.contrib.auth.models import Group

    from marketdata.models import Symbol
    from tests.factories import UserFactory

    Symbol.objects.filter(name="BTC-USD").update(reference_price=50000.0)
    user = UserFactory(username="alice")  # password: correct-horse-battery-staple
    user.groups.add(Group.objects.get_or_create(name="trader")[0])  # flushed by earlier tests?
    paper.members.add(user)
    module = types.ModuleType("readme_client")
    sys.modules["readme_client"] = module  # dataclasses look their module up
    try:
        exec(compile(readme_client_source(), "README.md", "exec"), module.__dict__)  # noqa: S102
    finally:
        del sys.modules["readme_client"]
    client = module.RRRClient(live_server.url, "alice", "correct-horse-battery-staple")
    (row,) = client.portfolio()
    assert row.name == "paper" and row.equity == paper.cash and row.trading_state == "active"
    answer = client.buy_market(row.account, "BTC-USD", Decimal("0.001"))
    # 201 with the order, or 422 with the risk verdict (e.g. no price yet): never an error.
    assert "order" in answer or answer.get("risk", {}).get("decision") in {"reject", "halt"}, answer
