"""Control from a phone: a Telegram bot for authorised chat ids only (``manage.py telegrambot``).

Each chat is bound to a user (``TELEGRAM_CHAT_USERS``: ``<chat id>=<username>``) and acts as
that user, with the user's permissions, as the API would: it reads only the accounts the user
may watch (granted, or all for staff), and halts, resumes or flattens only with the trader role
(or admin). Commands answer from the same selectors and services as the API and the admin; every
action is audited under the user's name (the reason says which chat), and every refused action
on an existing account is audited too (``telegram.refused``):

    /status [account]     trading state, equity, open positions and whether runtrader is alive
    /balance [account]    cash and equity
    /profit [account]     P&L since the start (equity - initial capital), realised/unrealised
    /daily [account]      equity change per UTC day over the last 7 days
    /positions [account]  open positions with their marks
    /halt [account]       halt: no new orders, working orders cancelled
    /resume [account]     back to active
    /flatten [account]    cancel working orders and close every position, after /confirm

Chats bound to no user are told so and logged; nothing else is done for them (nor for a chat
whose user is gone or inactive).
The bot talks to the Bot API through python-telegram-bot's ``Bot`` (getUpdates long polling,
sendMessage) at ``TELEGRAM_API_URL``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

CONFIRM_SECONDS = 60.0
HELP = (
    "Commands: /status /balance /profit /daily /positions /halt /resume /flatten "
    "(each takes an optional account name; /flatten asks for /confirm)"
)


class CommandError(Exception):
    """A command that cannot be answered (unknown account, bad arguments, not permitted)."""


NOT_AUTHORISED = "This chat is not authorised to control RRR."


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _figures(account) -> tuple[Decimal, list]:
    from trading.selectors import account_equity

    positions = [p for p in account.positions.select_related("symbol") if p.quantity != 0]
    return account_equity(account=account, positions=positions), positions


def status_text(account) -> str:
    """State, equity, positions and engine liveness of ``account``."""
    from risk.selectors import trading_state_of
    from trading.services import runtime_alive

    equity, positions = _figures(account)
    engine = "running" if runtime_alive(account=account) else "not running"
    return (
        f"{account.name} ({account.mode}): {trading_state_of(account=account)}\n"
        f"equity {_money(equity)}, {len(positions)} open position(s), runtrader {engine}"
    )


def balance_text(account) -> str:
    """Cash and equity."""
    equity, _ = _figures(account)
    return f"{account.name}: cash {_money(account.cash)}, equity {_money(equity)}"


def profit_text(account) -> str:
    """P&L since the start, with realised and unrealised P&L from the last snapshot."""
    equity, _ = _figures(account)
    pnl = equity - account.initial_capital
    share = pnl / account.initial_capital if account.initial_capital else Decimal(0)
    last = account.snapshots.order_by("-ts").first()
    extra = ""
    if last is not None:
        extra = (
            f"\nrealised {_money(last.realized_pnl)}, unrealised {_money(last.unrealized_pnl)}"
            f" (snapshot {last.ts:%Y-%m-%d %H:%M} UTC)"
        )
    start = _money(account.initial_capital)
    return f"{account.name}: P&L {pnl:+,.2f} ({share:+.2%}) on {start}{extra}"


def daily_text(account, days: int = 7) -> str:
    """Equity change per UTC day (last snapshot of each day against the one before)."""
    since = timezone.now() - timedelta(days=days + 1)
    closes: dict = {}
    for ts, equity in (
        account.snapshots.filter(ts__gte=since).order_by("ts").values_list("ts", "equity")
    ):
        closes[ts.date()] = equity
    if len(closes) < 2:
        return f"{account.name}: not enough snapshots for daily P&L yet"
    dates = sorted(closes)
    lines = [
        f"{day:%Y-%m-%d} {closes[day] - closes[prev]:+,.2f}"
        for prev, day in zip(dates, dates[1:], strict=False)
    ]
    return f"{account.name} daily P&L:\n" + "\n".join(lines[-days:])


def positions_text(account) -> str:
    """Open positions with quantity, average price and mark."""
    _, positions = _figures(account)
    if not positions:
        return f"{account.name}: no open positions"
    lines = [
        f"{p.symbol.name} {p.quantity.normalize():f} @ {_money(p.average_price)}"
        + (f" (mark {_money(p.mark_price)})" if getattr(p, "mark_price", None) else "")
        for p in positions
    ]
    return f"{account.name} positions:\n" + "\n".join(lines)


def halt(account, actor, via: str) -> str:
    """Halt the account and cancel its working orders (as the API's halt)."""
    from risk.services import trading_state_set
    from trading.services import orders_cancel_open

    reason = f"halted by {actor} via {via}"
    trading_state_set(account=account, state="halted", reason=reason, actor=actor)
    cancelled = orders_cancel_open(account=account, actor=actor, reason="halted")
    return f"{account.name} halted; {cancelled} working order(s) cancelled"


def resume(account, actor, via: str) -> str:
    """Set the account active again."""
    from risk.services import trading_state_set

    reason = f"resumed by {actor} via {via}"
    trading_state_set(account=account, state="active", reason=reason, actor=actor)
    return f"{account.name} is active again"


def flatten(account, actor, via: str) -> str:
    """Cancel every working order and close every position."""
    from trading.services import account_flatten

    orders = account_flatten(account=account, actor=actor)
    return f"{account.name}: {len(orders)} closing order(s) submitted"


READS: dict[str, Callable] = {
    "status": status_text,
    "balance": balance_text,
    "profit": profit_text,
    "daily": daily_text,
    "positions": positions_text,
}
ACTIONS: dict[str, Callable] = {"halt": halt, "resume": resume}


class TelegramControl:
    """Answer the commands of chats bound to users, as those users; ``/flatten`` waits for
    ``/confirm``."""

    def __init__(self, chats: dict[int, str], clock: Callable[[], float] = time.time) -> None:
        self.chats = dict(chats)  # chat id -> the username it acts as
        self.allowed = set(self.chats)
        self.clock = clock

    # A pending /flatten is a row (``TelegramConfirmation``), so a restarted bot, another run
    # of ``telegrambot --once`` or another process still honours the /confirm that follows it.
    def _moment(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def ask(self, chat_id: int, account: str) -> None:
        """Remember that ``chat_id`` must confirm flattening ``account``."""
        from monitoring.models import TelegramConfirmation

        expires = self._moment() + timedelta(seconds=CONFIRM_SECONDS)
        TelegramConfirmation.objects.update_or_create(
            chat_id=chat_id, defaults={"account": account, "expires_at": expires}
        )

    def take(self, chat_id: int) -> str | None:
        """Return the account awaiting confirmation by ``chat_id`` (once), None if expired."""
        from monitoring.models import TelegramConfirmation

        pending = TelegramConfirmation.objects.filter(chat_id=chat_id).first()
        if pending is None:
            return None
        # Deleted by its id and expiry: of two processes answering one /confirm, one wins.
        won = TelegramConfirmation.objects.filter(
            pk=pending.pk, account=pending.account, expires_at=pending.expires_at
        ).delete()[0]
        if not won or self._moment() > pending.expires_at:
            return None
        return pending.account

    def answer(self, chat_id: int, text: str) -> str:
        """Return the reply to ``text`` from ``chat_id`` (database work: call off the loop)."""
        if chat_id not in self.chats:
            logger.warning("telegram: refused chat", extra={"chat_id": chat_id})
            return NOT_AUTHORISED
        words = text.strip().split()
        if not words or not words[0].startswith("/"):
            return HELP
        command = words[0][1:].split("@", 1)[0].lower()
        argument = words[1] if len(words) > 1 else None
        close_old_connections()
        user = _chat_user(self.chats[chat_id])
        if user is None:
            logger.warning("telegram: chat bound to no active user",
                           extra={"chat_id": chat_id, "user": self.chats[chat_id]})  # fmt: skip
            return f"{NOT_AUTHORISED} (its user {self.chats[chat_id]!r} is not an active user)"
        try:
            return self._dispatch(chat_id, user, command, argument)
        except CommandError as exc:
            return str(exc)

    def _dispatch(self, chat_id: int, user, command: str, argument: str | None) -> str:
        from rrr_site.api.roles import Role

        via = f"telegram:{chat_id}"
        if command in READS:
            return READS[command](_account_for(user, argument, Role.VIEWER, command, via))
        if command in ACTIONS:
            account = _account_for(user, argument, Role.TRADER, command, via)
            return ACTIONS[command](account, user, via)
        if command == "flatten":
            account = _account_for(user, argument, Role.TRADER, command, via)
            self.ask(chat_id, account.name)
            return (
                f"Flatten {account.name}: cancel every working order and close every position? "
                f"Send /confirm within {CONFIRM_SECONDS:.0f} s."
            )
        if command == "confirm":
            name = self.take(chat_id)
            if name is None:
                return "Nothing to confirm (or it expired): send /flatten again."
            # Checked again: the user's grants or role may have changed since /flatten.
            return flatten(_account_for(user, name, Role.TRADER, "flatten", via), user, via)
        return HELP


def _chat_user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(username=username, is_active=True).first()


def _account_for(user, name: str | None, need, command: str, via: str):
    """Return the account ``name`` (default: DEFAULT_ACCOUNT) if ``user`` may ``command`` it
    (sees it, has the role ``need``); else refuse, auditing a refused action."""
    from rrr_site.api.roles import Role, role_of
    from trading.models import Account

    name = name or settings.DEFAULT_ACCOUNT
    account = Account.objects.visible_to(user).filter(name=name).first()
    if account is None:  # foreign or missing: the same answer (as the API's 404)
        if need >= Role.TRADER:
            _refused(user, Account.objects.filter(name=name).first(), command, via,
                     "not one of the user's accounts")  # fmt: skip
        raise CommandError(f"no account named {name!r} for {user.get_username()}")
    if role_of(user) < need:
        _refused(user, account, command, via, f"needs the {need.group} role")
        raise CommandError(
            f"{user.get_username()} may not /{command} {account.name}: it needs the "
            f"{need.group} role"
        )
    return account


def _refused(user, account, command: str, via: str, why: str) -> None:
    from monitoring.services import audit_record

    logger.warning("telegram: refused command",
                   extra={"user": user.get_username(), "command": command, "via": via,
                          "account": getattr(account, "name", None), "why": why})  # fmt: skip
    if account is not None:
        audit_record(actor=user, action="telegram.refused", obj=account, before=None,
                     after={"command": command, "via": via, "why": why})  # fmt: skip


async def poll(bot, control: TelegramControl, offset: int | None, timeout: int) -> int | None:
    """Fetch one batch of updates, answer each message; return the next offset."""
    updates = await bot.get_updates(offset=offset, timeout=timeout, allowed_updates=["message"])
    for update in updates:
        offset = update.update_id + 1
        message = update.message
        if message is None or not message.text:
            continue
        reply = await sync_to_async(control.answer, thread_sensitive=True)(
            message.chat.id, message.text
        )
        await bot.send_message(chat_id=message.chat.id, text=reply)
    return offset


def build_bot():
    """Return python-telegram-bot's ``Bot`` for ``TELEGRAM_BOT_TOKEN`` at ``TELEGRAM_API_URL``."""
    from telegram import Bot

    base = settings.TELEGRAM_API_URL.rstrip("/")
    return Bot(settings.TELEGRAM_BOT_TOKEN, base_url=f"{base}/bot")
