"""``manage.py bootstrap``: idempotent first-run setup of symbols, a paper account and limits."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from marketdata.services import symbols_ensure_defaults
from risk.services import risk_limits_ensure_defaults, trading_state_ensure
from rrr_site.api.roles import ROLE_GROUPS
from trading.services import account_get_or_create


class Command(BaseCommand):
    help = (
        "Create the default symbols, a paper account with INITIAL_CAPITAL, default risk limits "
        "and, when no superuser exists, an admin user with a random password printed once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--account",
            default=settings.DEFAULT_ACCOUNT,
            help="Name of the paper account (default: %(default)s)",
        )
        parser.add_argument(
            "--admin-username", default="admin", help="Username of the admin user to create"
        )
        parser.add_argument("--no-admin", action="store_true", help="Do not create an admin user")

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        symbols = symbols_ensure_defaults()
        account, created = account_get_or_create(
            name=options["account"], initial_capital=settings.INITIAL_CAPITAL
        )
        limits = risk_limits_ensure_defaults(account=account)
        trading_state_ensure(account=account)
        self.stdout.write(
            f"symbols created: {symbols}; account {account.name!r} "
            f"{'created' if created else 'exists'} (cash {account.cash}); limits created: {limits}"
        )
        if not options["no_admin"]:
            self._ensure_admin(options["admin_username"])
        self._ensure_roles()
        self._ensure_schedules()

    def _ensure_schedules(self) -> None:
        """Schedule the daily performance record and the every-minute alert tick, sweep takeover
        and trade tally refresh."""
        from backtesting.sweep_takeover import sweeps_schedule_ensure
        from monitoring.alerts import alerts_schedule_ensure
        from monitoring.performance import performance_schedule_ensure
        from monitoring.watch import watch_schedule_ensure
        from trading.trade_tally import trade_tally_schedule_ensure

        created = [performance_schedule_ensure(), alerts_schedule_ensure()]
        created += [watch_schedule_ensure(), sweeps_schedule_ensure()]
        created.append(trade_tally_schedule_ensure())
        self.stdout.write(f"schedules created: {sum(created)}")

    def _ensure_roles(self) -> None:
        """Create the API's role groups and put every superuser in ``admin``."""
        for name in ROLE_GROUPS:
            Group.objects.get_or_create(name=name)
        admins = Group.objects.get(name="admin")
        superusers = get_user_model().objects.filter(is_superuser=True)
        admins.user_set.add(*superusers)
        self.stdout.write(f"roles: {', '.join(ROLE_GROUPS)}; admins: {admins.user_set.count()}")

    def _ensure_admin(self, username: str) -> None:
        """Create a superuser with a random password unless one exists."""
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("superuser exists: leaving it alone")
            return
        password = secrets.token_urlsafe(18)
        user_model.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.WARNING(
                f"created superuser {username!r} with password: {password}\n"
                "  (shown once; change it with `manage.py changepassword`)"
            )
        )
