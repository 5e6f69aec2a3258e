"""An unknown strategy name over the API is told without the server's folders and files.

``POST /api/v1/backtests`` (and research runs) with a name no strategy has answered the command
line's message: the server's strategy folder (``/srv/.../strategies``), a file of it that failed
to import with its path and line, and "or give path/to/file.py:ClassName", which the API refuses.
"""

from __future__ import annotations

import pytest

from backtesting.models import BacktestRun
from research.models import ResearchRun
from tests.rrr_site.api.test_strategy_paths_refused import backtest, study
from trading.engine import user_strategies

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(tmp_path):
    before = user_strategies.strategy_paths()
    user_strategies.set_strategy_paths([tmp_path])
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    yield tmp_path
    user_strategies.set_strategy_paths(before)


@pytest.mark.parametrize("name", ["Nope", "os", "SignalStrategy"])
def test_an_unknown_name_is_refused_naming_no_folder_or_file(as_role, folder, name) -> None:
    trader = as_role("trader")
    for url, body in (("/api/v1/backtests", backtest(name)),
                      ("/api/v1/research/runs", study(name))):  # fmt: skip
        answer = trader.post(url, body, format="json")
        assert answer.status_code == 400, answer.json()
        told = answer.json()["strategy"][0]
        assert f"unknown strategy {name!r}; built-in: " in told and "sma_cross" in told
        assert "STRATEGY_PATHS" in told and "manage.py strategy list" in told
        assert str(folder) not in told and "broken.py" not in told and "file.py" not in told
    assert not BacktestRun.objects.exists() and not ResearchRun.objects.exists()


def test_a_class_in_the_folder_is_still_found_by_name(as_role, folder) -> None:
    (folder / "mine.py").write_text(
        "from trading.engine.signal_strategy import SignalStrategy\n\n\n"
        "class Mine(SignalStrategy):\n"
        "    def entries(self, df):\n"
        '        df["enter_long"] = df["close"] > df["close"].shift(1)\n'
        "        return df\n"
    )
    answer = as_role("trader").post("/api/v1/backtests", backtest("Mine"), format="json")
    assert answer.status_code == 202, answer.json()
