"""The Backtests page: a huge run id to compare is ignored, and users' strategies can be launched.

``/backtests/?compare=99999999999999999999999`` was a 500 (the id overflowed the database's
integer). The launch form offered the built-ins only, while ``POST /api/v1/backtests`` (which it
posts to) takes a class of ``STRATEGY_PATHS`` by name too.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group

from tests.factories import UserFactory
from trading.engine import user_strategies

pytestmark = pytest.mark.django_db

MINE = """
from trading.engine.signal_strategy import SignalStrategy


class MyCross(SignalStrategy):
    def entries(self, df):
        df["enter_long"] = df["close"] > df["close"].shift(1)
        return df
"""


@pytest.fixture
def trader(client):
    user = UserFactory(username="qa-trader")
    user.groups.add(Group.objects.get_or_create(name="trader")[0])
    client.force_login(user)
    return client


@pytest.mark.parametrize("ids", ["99999999999999999999999", "1,99999999999999999999999", "１", "0"])
def test_a_run_id_no_run_can_have_is_ignored(trader, ids) -> None:
    assert trader.get(f"/backtests/?compare={ids}").status_code == 200


def test_the_form_offers_the_users_strategies_and_the_api_takes_them(trader, tmp_path) -> None:
    before = user_strategies.strategy_paths()
    user_strategies.set_strategy_paths([tmp_path])
    try:
        (tmp_path / "my_cross.py").write_text(MINE)
        (tmp_path / "broken.py").write_text("raise RuntimeError('not a strategy')\n")
        page = trader.get("/backtests/").content.decode()
        select = re.search(r'<select name="strategy">(.*?)</select>', page, re.S).group(1)
        offered = re.findall(r"<option[^>]*>([^<]+)<", select)
        assert "sma_cross" in offered and offered[-1] == "MyCross"
        form = {"strategy": "MyCross", "symbols": ["BTC-USD"], "timeframe": "1h",
                "source": "sim", "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-08T00:00:00Z"}  # fmt: skip
        response = trader.post("/api/v1/backtests", form, content_type="application/json")
        assert response.status_code == 202, response.content
    finally:
        user_strategies.set_strategy_paths(before)
