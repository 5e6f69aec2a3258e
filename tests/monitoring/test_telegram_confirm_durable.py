"""A Telegram ``/flatten`` waits for its ``/confirm`` in the database: a restarted bot, or the
next ``telegrambot --once`` in another process, still honours it (the cache was per process)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from monitoring.models import TelegramConfirmation
from monitoring.telegram_bot import TelegramControl
from tests.fakes.notify import FakeAlertServices
from tests.fakes.threaded import served
from tests.monitoring.test_telegram_bot import CHATS, OPS, _user
from trading.models import Order, Position


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_outlives_the_bot_and_its_cache(paper):
    _user("olga", "trader", paper)
    now = [1000.0]
    TelegramControl(CHATS, clock=lambda: now[0]).ask(OPS, "paper")
    cache.clear()  # a restart: nothing the old process held in memory is left
    restarted = TelegramControl(CHATS, clock=lambda: now[0])
    now[0] = 1059.0
    assert restarted.take(OPS) == "paper"
    assert restarted.take(OPS) is None  # once only
    assert not TelegramConfirmation.objects.exists()

    restarted.ask(OPS, "paper")
    restarted.ask(OPS, "desk2")  # a second /flatten replaces the first
    assert TelegramConfirmation.objects.get().account == "desk2"
    now[0] = 1120.0
    assert restarted.take(OPS) is None  # expired, and gone
    assert not TelegramConfirmation.objects.exists()


def _bot_once(env: dict[str, str]) -> None:
    manage = f"{settings.BASE_DIR}/manage.py"
    done = subprocess.run(
        [sys.executable, manage, "telegrambot", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
def test_flatten_and_confirm_in_two_bot_processes(paper, subprocess_env):
    from marketdata.models import Symbol

    _user("olga", "trader", paper)
    Position.objects.create(account=paper, symbol=Symbol.objects.get(name="BTC-USD"),
                            quantity=Decimal("0.5"), average_price=Decimal("100"),
                            updated_at=timezone.now())  # fmt: skip
    server = FakeAlertServices(telegram_token="777:BOT")
    with served(server):
        env = {
            **subprocess_env,
            "TELEGRAM_API_URL": server.url,
            "TELEGRAM_BOT_TOKEN": "777:BOT",
            "TELEGRAM_CHAT_USERS": f"{OPS}=olga",
        }
        env.pop("REDIS_URL", None)  # the default: no shared cache between the two processes
        server.queue_message(OPS, "/flatten")
        _bot_once(env)
        assert "Send /confirm" in server.telegram[-1]["text"]
        server.queue_message(OPS, "/confirm")
        _bot_once(env)
        assert server.telegram[-1]["text"] == "paper: 1 closing order(s) submitted"
    order = Order.objects.get(account=paper)
    assert (order.side, order.quantity, order.reduce_only) == ("sell", Decimal("0.5"), True)
