"""``manage.py telegrambot`` against a local server speaking the Bot API (getUpdates/sendMessage).

Only chats bound to users are answered, each with its user's permissions (accounts granted,
role); reads come from the same selectors as the API; halt, resume and flatten (after /confirm)
go through the same services and are audited; refused actions are audited too."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring.models import AuditLog
from monitoring.telegram_bot import TelegramControl
from risk.models import TradingState
from rrr_site.settings import _chat_users
from tests.factories import AccountFactory, UserFactory
from tests.fakes.notify import FakeAlertServices
from tests.fakes.threaded import served
from trading.models import Order, Position

OPS, VIEWER, OTHER, GONE, STRANGER = 1001, 1002, 1003, 1004, 6666
CHATS = {OPS: "olga", VIEWER: "vera", OTHER: "otto", GONE: "gus"}


def _user(name: str, role: str, *accounts):
    user = UserFactory(username=name)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    for account in accounts:
        account.members.add(user)
    return user


@pytest.fixture
def bot_api(settings, paper):
    """olga trades paper, vera watches it, otto trades only desk2; gus's user is inactive."""
    desk2 = AccountFactory(name="desk2")
    _user("olga", "trader", paper)
    _user("vera", "viewer", paper)
    _user("otto", "trader", desk2)
    gus = _user("gus", "trader", paper)
    gus.is_active = False
    gus.save()
    server = FakeAlertServices(telegram_token="777:BOT")
    with served(server):
        settings.TELEGRAM_API_URL = server.url
        settings.TELEGRAM_BOT_TOKEN = "777:BOT"
        settings.TELEGRAM_CHAT_USERS = CHATS
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
    replies = converse(
        bot_api,
        (OPS, "/status"),
        (STRANGER, "/balance"),
        (OPS, "/balance"),
        (OPS, "/positions"),
        (OPS, "/profit"),
        (OPS, "/status nosuch"),
    )
    assert replies[0][0] == OPS and "paper (paper): active" in replies[0][1]
    assert "runtrader not running" in replies[0][1]
    assert replies[1] == (STRANGER, "This chat is not authorised to control RRR.")
    assert "cash 100,000.00, equity 100,000.00" in replies[2][1]
    assert replies[3][1] == "paper: no open positions"
    assert "P&L +0.00 (+0.00%)" in replies[4][1]
    assert replies[5][1] == "no account named 'nosuch' for olga"
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
    entries = AuditLog.objects.filter(action="trading_state.set").order_by("at")
    assert [(e.actor_repr, e.after["state"]) for e in entries] == [
        ("olga", "halted"),
        ("olga", "active"),
    ]
    assert entries[0].after["reason"] == f"halted by olga via telegram:{OPS}"
    assert not AuditLog.objects.filter(actor_repr__contains=str(STRANGER)).exists()


@pytest.mark.django_db(transaction=True)
def test_a_chat_acts_only_on_its_users_accounts_and_refusals_are_audited(bot_api, paper):
    replies = converse(bot_api, (OTHER, "/halt paper"), (OTHER, "/flatten paper"),
                       (OTHER, "/resume paper"), (OTHER, "/status paper"),
                       (OTHER, "/status desk2"), (OTHER, "/halt"))  # fmt: skip
    refused = "no account named 'paper' for otto"
    assert [text for _, text in replies[:4]] == [refused] * 4  # as if it did not exist
    assert "desk2 (paper): active" in replies[4][1]
    assert replies[5][1] == refused  # the default account is paper: not otto's either
    assert TradingState.objects.get(account=paper).state == "active"
    audited = AuditLog.objects.filter(action="telegram.refused").order_by("at")
    assert [(e.actor_repr, e.object_id, e.after["command"]) for e in audited] == [
        ("otto", str(paper.pk), command) for command in ("halt", "flatten", "resume", "halt")
    ]  # reads refused are logged, not audited
    assert audited[0].after == {"command": "halt", "via": f"telegram:{OTHER}",
                                "why": "not one of the user's accounts"}  # fmt: skip
    assert converse(bot_api, (OTHER, "/halt desk2"))[0][1].startswith("desk2 halted")


@pytest.mark.django_db(transaction=True)
def test_a_viewer_reads_but_may_not_act_and_an_inactive_user_is_refused(bot_api, paper):
    replies = converse(bot_api, (VIEWER, "/balance"), (VIEWER, "/halt"), (VIEWER, "/flatten"),
                       (GONE, "/status"), (GONE, "/halt"))  # fmt: skip
    assert "cash 100,000.00" in replies[0][1]
    assert replies[1][1] == "vera may not /halt paper: it needs the trader role"
    assert replies[2][1] == "vera may not /flatten paper: it needs the trader role"
    assert replies[3][1] == replies[4][1] and "'gus' is not an active user" in replies[3][1]
    assert TradingState.objects.get(account=paper).state == "active"
    whys = list(
        AuditLog.objects.filter(action="telegram.refused").values_list("actor_repr", "after__why")
    )
    assert whys == [("vera", "needs the trader role")] * 2


@pytest.mark.django_db(transaction=True)
def test_flatten_waits_for_confirmation(bot_api, paper):
    from marketdata.models import Symbol

    symbol = Symbol.objects.get(name="BTC-USD")
    Position.objects.create(
        account=paper,
        symbol=symbol,
        quantity=Decimal("0.5"),
        average_price=Decimal("100"),
        updated_at=timezone.now(),
    )
    replies = converse(bot_api, (OPS, "/flatten"))
    assert "Send /confirm within 60 s" in replies[0][1]
    assert not Order.objects.filter(account=paper).exists()
    replies = converse(bot_api, (STRANGER, "/confirm"), (OPS, "/confirm"))
    assert "not authorised" in replies[0][1]
    assert replies[1][1] == "paper: 1 closing order(s) submitted"
    order = Order.objects.get(account=paper)
    assert (order.side, order.quantity, order.reduce_only) == ("sell", Decimal("0.5"), True)


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_is_checked_again_against_the_users_grants(bot_api, paper):
    from marketdata.models import Symbol

    Position.objects.create(account=paper, symbol=Symbol.objects.get(name="BTC-USD"),
                            quantity=Decimal("0.5"), average_price=Decimal("100"),
                            updated_at=timezone.now())  # fmt: skip
    assert "Send /confirm" in converse(bot_api, (OPS, "/flatten"))[0][1]
    paper.members.remove(paper.members.get(username="olga"))  # access taken away meanwhile
    assert converse(bot_api, (OPS, "/confirm"))[0][1] == "no account named 'paper' for olga"
    assert not Order.objects.filter(account=paper).exists()
    assert AuditLog.objects.get(action="telegram.refused").after["command"] == "flatten"


@pytest.mark.django_db(transaction=True)  # each answer closes old connections
def test_a_confirmation_expires():
    _user("olga", "trader")
    now = [1000.0]
    control = TelegramControl(CHATS, clock=lambda: now[0])
    control.ask(OPS, "paper")
    now[0] = 1061.0
    assert "expired" in control.answer(OPS, "/confirm")


@pytest.mark.django_db
def test_the_command_refuses_without_token_or_chats(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    with pytest.raises(CommandError, match="TELEGRAM_BOT_TOKEN"):
        call_command("telegrambot", "--once")
    settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_CHAT_USERS = "1:X", {}
    settings.TELEGRAM_ALLOWED_CHAT_IDS = [OPS]  # allowed but bound to no user: not enough
    with pytest.raises(CommandError, match="TELEGRAM_CHAT_USERS is empty: bind each chat"):
        call_command("telegrambot", "--once")


@pytest.mark.django_db(transaction=True)
def test_the_command_warns_of_chats_it_will_refuse(bot_api, settings):
    settings.TELEGRAM_ALLOWED_CHAT_IDS = [OPS, 4242]
    out = io.StringIO()
    call_command("telegrambot", "--once", stdout=out)
    text = out.getvalue()
    assert "TELEGRAM_ALLOWED_CHAT_IDS [4242] are bound to no user" in text
    assert f"chat {GONE} is bound to 'gus', not an active user" in text
    assert f"{OPS} as olga" in text


def test_chat_users_are_parsed_or_refused_clearly():
    assert _chat_users(["1001=alice", " -100200=ops desk "]) == {1001: "alice", -100200: "ops desk"}
    for bad in (["1001"], ["alice=1001"], ["1001="]):
        with pytest.raises(ImproperlyConfigured, match="is not <chat id>=<username>"):
            _chat_users(bad)
