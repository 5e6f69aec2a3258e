"""``manage.py telegrambot`` against a local server speaking the Bot API (getUpdates/sendMessage).

Only authorised chats are answered; reads come from the same selectors as the API; halt, resume
and flatten (after /confirm) go through the same services and are audited."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring.models import AuditLog
from monitoring.telegram_bot import TelegramControl
from risk.models import TradingState
from tests.fakes.notify import FakeAlertServices
from tests.fakes.threaded import served
from trading.models import Order, Position

OPS, STRANGER = 1001, 6666


@pytest.fixture
def bot_api(settings, paper):
    server = FakeAlertServices(telegram_token="777:BOT")
    with served(server):
        settings.TELEGRAM_API_URL = server.url
        settings.TELEGRAM_BOT_TOKEN = "777:BOT"
        settings.TELEGRAM_ALLOWED_CHAT_IDS = [OPS]
        yield server


def converse(server, *messages: tuple[int, str]) -> list[tuple[int, str]]:
    """Queue messages, run the bot once, return (chat, reply) of what it sent."""
    sent = len(server.telegram)
    for chat, text in messages:
        server.queue_message(chat, text)
    call_command("telegrambot", "--once", stdout=io.StringIO())
    return [(int(m["chat_id"]), m["text"]) for m in server.telegram[sent:]]


@pytest.mark.django_db(transaction=True)
def test_reads_answer_authorised_chats_only(bot_api, paper):
    replies = converse(bot_api, (OPS, "/status"), (STRANGER, "/balance"), (OPS, "/balance"),
                       (OPS, "/positions"), (OPS, "/profit"), (OPS, "/status nosuch"))
    assert replies[0][0] == OPS and "paper (paper): active" in replies[0][1]
    assert "runtrader not running" in replies[0][1]
    assert replies[1] == (STRANGER, "This chat is not authorised to control RRR.")
    assert "cash 100,000.00, equity 100,000.00" in replies[2][1]
    assert replies[3][1] == "paper: no open positions"
    assert "P&L +0.00 (+0.00%)" in replies[4][1]
    assert replies[5][1] == "no account named 'nosuch'"
    # Updates are acknowledged: a second run answers nothing twice.
    assert converse(bot_api) == []


@pytest.mark.django_db(transaction=True)
def test_halt_and_resume_are_audited_and_strangers_change_nothing(bot_api, paper):
    replies = converse(bot_api, (STRANGER, "/halt"), (OPS, "/halt"))
    assert "not authorised" in replies[0][1]
    assert replies[1][1] == "paper halted; 0 working order(s) cancelled"
    assert TradingState.objects.get(account=paper).state == "halted"
    converse(bot_api, (OPS, "/resume paper"))
    assert TradingState.objects.get(account=paper).state == "active"
    actors = set(AuditLog.objects.values_list("actor_repr", flat=True))
    assert f"telegram:{OPS}" in actors and f"telegram:{STRANGER}" not in actors


@pytest.mark.django_db(transaction=True)
def test_flatten_waits_for_confirmation(bot_api, paper):
    from marketdata.models import Symbol

    symbol = Symbol.objects.get(name="BTC-USD")
    Position.objects.create(account=paper, symbol=symbol, quantity=Decimal("0.5"),
                            average_price=Decimal("100"), updated_at=timezone.now())
    replies = converse(bot_api, (OPS, "/flatten"))
    assert "Send /confirm within 60 s" in replies[0][1]
    assert not Order.objects.filter(account=paper).exists()
    replies = converse(bot_api, (STRANGER, "/confirm"), (OPS, "/confirm"))
    assert "not authorised" in replies[0][1]
    assert replies[1][1] == "paper: 1 closing order(s) submitted"
    order = Order.objects.get(account=paper)
    assert (order.side, order.quantity, order.reduce_only) == ("sell", Decimal("0.5"), True)


def test_a_confirmation_expires():
    now = [1000.0]
    control = TelegramControl([OPS], clock=lambda: now[0])
    control.ask(OPS, "paper")
    now[0] = 1061.0
    assert "expired" in control.answer(OPS, "/confirm")


@pytest.mark.django_db
def test_the_command_refuses_without_token_or_chats(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    with pytest.raises(CommandError, match="TELEGRAM_BOT_TOKEN"):
        call_command("telegrambot", "--once")
    settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_ALLOWED_CHAT_IDS = "1:X", []
    with pytest.raises(CommandError, match="TELEGRAM_ALLOWED_CHAT_IDS"):
        call_command("telegrambot", "--once")
