"""Reports load plotly.js from one file beside them (not 5 MB inlined in each), and every place
that serves a report (the file, the API, the dashboard) answers that script's URL."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import plotly.graph_objects as go
import pytest
from django.test import Client

from backtesting.engine.plotly_asset import SCRIPT_NAME, plotly_source
from backtesting.models import BacktestRun
from research.engine.findings import StudyOutput
from research.engine.report import write_report as write_research_report

pytestmark = pytest.mark.django_db

RUN = {
    "strategy": "sma_cross",
    "symbols": ["BTC-USD"],
    "timeframe": "1h",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-03-01T00:00:00Z",
    "params": {"fast": 5, "slow": 20},
    "source": "sim",
    "no_risk": True,
}
SCRIPT_SRC = re.compile(rb'<script src="([^"]+)"')


@pytest.fixture(autouse=True)
def reports_dir(settings, tmp_path):
    settings.REPORTS_DIR = tmp_path / "reports"
    return settings.REPORTS_DIR


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_report_is_small_references_plotly_beside_it_and_every_server_answers_it(as_role, world):
    trader = as_role("trader")
    queued = trader.post("/api/v1/backtests", RUN, format="json")
    assert queued.status_code == 202, queued.json()
    run = BacktestRun.objects.get(pk=queued.json()["id"])
    report = Path(run.report_path)
    # The written file: a typical run's page is small and loads plotly.js from its own folder.
    assert report.stat().st_size < 200_000
    page = report.read_bytes()
    assert SCRIPT_SRC.findall(page) == [SCRIPT_NAME.encode()]
    beside = report.parent / SCRIPT_NAME
    assert beside.read_bytes() == plotly_source().read_bytes()

    # The API serves the page; the script's URL, resolved against the page's, answers 200.
    page_url = f"/api/v1/backtests/{run.pk}/report"
    src = SCRIPT_SRC.findall(_body(trader.get(page_url)))[0].decode()
    script = trader.get(urljoin(page_url, src))
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert _body(script) == beside.read_bytes()
    # Like the report: its owner's and admins', a 404 for others and for names not plotly's.
    assert as_role("viewer").get(urljoin(page_url, src)).status_code == 404
    assert as_role("admin").get(urljoin(page_url, src)).status_code == 200
    assert as_role("anonymous").get(urljoin(page_url, src)).status_code == 401
    assert trader.get(f"/api/v1/backtests/{run.pk}/plotly-..%2F..%2Fx.min.js").status_code == 404
    assert trader.get(f"/api/v1/backtests/{run.pk}/plotly-1.0.0.min.js").status_code == 404

    # The dashboard serves the same page and script by the API's rule: signed in, and the
    # run's owner, staff or an admin; anyone else gets a 404 for both.
    browser = Client()
    dash_url = f"/backtests/{run.pk}/report"
    assert browser.get(urljoin(dash_url, src)).status_code == 302  # to the login page
    browser.force_login(world.users["viewer"])
    assert browser.get(dash_url).status_code == 404
    assert browser.get(urljoin(dash_url, src)).status_code == 404
    browser.force_login(run.owner)
    assert browser.get(dash_url).status_code == 200
    dash_script = browser.get(urljoin(dash_url, src))
    assert dash_script.status_code == 200 and _body(dash_script) == beside.read_bytes()


def test_research_reports_share_one_plotly_file_in_their_folder(reports_dir):
    output = StudyOutput(summary={"n": 1}, figures=[go.Figure(go.Scatter(y=[1, 3, 2]))])
    first = write_research_report(output, Path(reports_dir) / "a.html", title="a")
    second = write_research_report(output, Path(reports_dir) / "b.html", title="b")
    for path in (first, second):
        assert path.stat().st_size < 200_000
        assert SCRIPT_SRC.findall(path.read_bytes()) == [SCRIPT_NAME.encode()]
    scripts = sorted(p.name for p in Path(reports_dir).glob("*.js"))
    assert scripts == [SCRIPT_NAME]  # one copy, no temporary file left behind
    assert not list(Path(reports_dir).glob(".*"))
