"""``manage.py telegrambot``: the Telegram control bot (long polling until SIGINT/SIGTERM)."""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.telegram_bot import TelegramControl, build_bot, poll


class Command(BaseCommand):
    help = "Answer /status /balance /profit /daily /positions /halt /resume /flatten on Telegram."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Answer the messages waiting now, then exit"
        )
        parser.add_argument("--poll-timeout", type=int, default=30, help="Long-poll seconds")

    def handle(self, *args, **options) -> None:
        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError("TELEGRAM_BOT_TOKEN is not set")
        chats = settings.TELEGRAM_CHAT_USERS
        if not chats:
            raise CommandError(
                "TELEGRAM_CHAT_USERS is empty: bind each chat to the user it acts as "
                "(<chat id>=<username>,...); no chat could use the bot"
            )
        if options["poll_timeout"] < 0:
            raise CommandError("--poll-timeout must be >= 0")
        self._warn_unbound(chats)
        control = TelegramControl(chats)
        try:
            asyncio.run(self._run(control, options["once"], options["poll_timeout"]))
        except Exception as exc:  # telegram.error.* (bad token, network) end the command loudly
            raise CommandError(f"telegram: {type(exc).__name__}: {exc}") from exc

    def _warn_unbound(self, chats: dict[int, str]) -> None:
        """Say which configured chats will be refused: no user bound, or no such active user."""
        from django.contrib.auth import get_user_model

        unbound = sorted(set(settings.TELEGRAM_ALLOWED_CHAT_IDS) - set(chats))
        if unbound:
            self.stdout.write(self.style.WARNING(
                f"TELEGRAM_ALLOWED_CHAT_IDS {unbound} are bound to no user in "
                "TELEGRAM_CHAT_USERS: they are refused"
            ))  # fmt: skip
        users = get_user_model().objects.filter(is_active=True, username__in=chats.values())
        active = set(users.values_list("username", flat=True))
        for chat, name in sorted(chats.items()):
            if name not in active:
                self.stdout.write(self.style.WARNING(
                    f"chat {chat} is bound to {name!r}, not an active user: it is refused"
                ))  # fmt: skip

    async def _run(self, control: TelegramControl, once: bool, timeout: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with build_bot() as bot:
            me = await bot.get_me()
            bound = ", ".join(f"{chat} as {user}" for chat, user in sorted(control.chats.items()))
            self.stdout.write(f"telegram bot @{me.username} answering chats {bound}")
            offset = None
            while not stop.is_set():
                offset = await poll(bot, control, offset, 0 if once else timeout)
                if once:
                    break
            if offset is not None:  # confirm what was answered, so no restart answers it again
                await bot.get_updates(offset=offset, timeout=0)
