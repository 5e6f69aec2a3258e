"""A live server with a running paper engine, and Debian's Chromium driven by Playwright.

The browser is ``/usr/bin/chromium`` (never a downloaded one), headless, with a fresh profile;
the server is ``runtrader --paper --serve`` on a free port over this test's database, on the
simulated market at 1-second bars, with its django-q2 task worker (queued backtests run there).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "data" / "screenshots"
PASSWORD = "e2e-Pa55word!"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run installs it as root)",
)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server_url(subprocess_env, paper, tmp_path):
    """Start ``runtrader --paper --serve`` and return its base URL once /health answers."""
    import urllib.request

    from django.contrib.auth.models import Group

    from tests.factories import UserFactory
    from tests.polling import wait_for

    user = UserFactory(username="e2e-trader")
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get_or_create(name="trader")[0])
    paper.members.add(user)
    port = free_port()
    log = open(tmp_path / "runtrader.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runtrader", "--paper", "--serve", f"127.0.0.1:{port}",
         "--symbols", "BTC-USD", "--timeframe", "1s"],
        cwd=Path(__file__).resolve().parents[2], env={**subprocess_env, "Q_SYNC": "false"},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"{url}/health", timeout=1).status in {200, 503}
        except OSError:
            return process.poll() is not None

    wait_for(up, timeout=60, what="runtrader --serve")
    assert process.poll() is None, (tmp_path / "runtrader.log").read_text()[-3000:]
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def browser_page():
    """A Chromium page (fresh profile) whose console errors are collected in ``page.errors``."""
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        page = context.new_page()
        page.errors = []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield page
        context.close()


def login(page, url: str) -> None:
    """Sign in through the admin login form and land on the overview."""
    page.goto(f"{url}/login/?next=/")
    page.fill("#id_username", "e2e-trader")
    page.fill("#id_password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{url}/")
