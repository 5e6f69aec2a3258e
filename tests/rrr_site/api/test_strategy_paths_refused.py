"""Over the API a strategy is named, never a file on the server: naming one imported (ran) it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from backtesting.models import BacktestRun
from research.models import ResearchRun

pytestmark = pytest.mark.django_db

PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("imported by the server")
"""


@pytest.fixture
def planted():
    """A .py file anywhere on the host that writes a marker when imported (a path short enough
    for the field's 64 characters, as /tmp/x/p.py is)."""
    folder = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))
    marker, script = folder / "imported", folder / "p.py"
    script.write_text(PAYLOAD.format(marker=str(marker)))
    yield script, marker
    shutil.rmtree(folder)


def backtest(strategy: str) -> dict:
    return {"strategy": strategy, "symbols": ["BTC-USD"], "timeframe": "1h",
            "start": "2024-01-01T00:00:00Z", "end": "2024-01-05T00:00:00Z", "source": "sim",
            "no_risk": True}  # fmt: skip


def study(strategy: str) -> dict:
    return {"study": "overfitting", "symbols": ["BTC-USD"], "timeframe": "1h",
            "start": "2024-01-01T00:00:00Z", "end": "2024-01-10T00:00:00Z", "source": "sim",
            "strategy": strategy, "space": ["fast=5:10:5"]}  # fmt: skip


@pytest.mark.parametrize("form", ["{path}:X", "{path}", "../../..{path}:X", "x.py:Y"])
def test_a_trader_cannot_make_the_server_import_a_file(as_role, planted, form):
    script, marker = planted
    trader = as_role("trader")
    strategy = form.format(path=script)
    for url, body in (("/api/v1/backtests", backtest(strategy)),
                      ("/api/v1/research/runs", study(strategy))):  # fmt: skip
        answer = trader.post(url, body, format="json")
        assert answer.status_code == 400, answer.json()
        assert "command line only" in answer.json()["strategy"][0]
        assert str(script) not in str(answer.json())  # nor whether the file exists
    assert not marker.exists()
    assert not BacktestRun.objects.exists() and not ResearchRun.objects.exists()


def test_names_still_work(as_role):
    answer = as_role("trader").post("/api/v1/backtests", backtest("sma_cross"), format="json")
    assert answer.status_code == 202, answer.json()
