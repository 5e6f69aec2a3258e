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
        if not settings.TELEGRAM_ALLOWED_CHAT_IDS:
            raise CommandError("TELEGRAM_ALLOWED_CHAT_IDS is empty: no chat could use the bot")
        if options["poll_timeout"] < 0:
            raise CommandError("--poll-timeout must be >= 0")
        control = TelegramControl(settings.TELEGRAM_ALLOWED_CHAT_IDS)
        try:
            asyncio.run(self._run(control, options["once"], options["poll_timeout"]))
        except Exception as exc:  # telegram.error.* (bad token, network) end the command loudly
            raise CommandError(f"telegram: {type(exc).__name__}: {exc}") from exc

    async def _run(self, control: TelegramControl, once: bool, timeout: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with build_bot() as bot:
            me = await bot.get_me()
            self.stdout.write(f"telegram bot @{me.username} answering {control.allowed}")
            offset = None
            while not stop.is_set():
                offset = await poll(bot, control, offset, 0 if once else timeout)
                if once:
                    break
            if offset is not None:  # confirm what was answered, so no restart answers it again
                await bot.get_updates(offset=offset, timeout=0)
