"""``manage.py store_unsaved FILE``: store trading state an engine could not, from its dump.

An engine that stopped with trading state the database did not take (a record it refused, an
outage past ``RRR_WRITE_OUTAGE_LIMIT``) wrote it to ``DATA_DIR/unsaved/<account>-<time>.json``.
After the cause is fixed (the refused record corrected or removed from the file, the database
back), this stores the batch in one transaction, as the engine would have: orders upserted on
their client id, fills deduplicated, positions, cash and snapshots after them. ``--dry-run``
writes it in a transaction that is rolled back and names the record the database refuses.
The account's runtrader lock is held meanwhile, so no engine trades it while it is stored.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction

from monitoring.models import SystemEvent
from rrr_site.locks import LockHeld, lock_held, owner_label
from trading.models import Account
from trading.persistence import (
    AccountFence,
    TradingStore,
    _find_refused,
    batch_from_json,
    db_error_detail,
)


class Command(BaseCommand):
    help = "Store the trading state an engine dumped to DATA_DIR/unsaved/ (see --dry-run)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="the engine's unsaved-state JSON file")
        parser.add_argument(
            "--dry-run", action="store_true", help="check it in a rolled-back transaction"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="store it even though an engine traded the account after the file was written",
        )

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            batch = batch_from_json(data["batch"])
            written = datetime.fromisoformat(data["written_at"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{path}: not an unsaved-state file ({exc})") from exc
        try:
            account = Account.objects.get(name=batch.account)
        except Account.DoesNotExist:
            raise CommandError(f"{path}: account {batch.account!r} does not exist") from None
        later = (
            SystemEvent.objects.filter(
                component="runtrader",
                kind="session_start",
                ts__gt=written,
                context__account=account.name,
            )
            .order_by("ts")
            .first()
        )
        if later is not None and not options["force"]:
            raise CommandError(
                f"account {account.name!r} was traded again after {path.name} was written (a "
                f"session started {later.ts:%Y-%m-%d %H:%M:%S}): storing its older cash and "
                "positions would overwrite newer ones; --force to store it anyway"
            )
        counts = (
            f"{len(batch.orders)} orders, {len(batch.fills)} fills, "
            f"{len(batch.positions)} positions, {len(batch.snapshots)} snapshots, cash {batch.cash}"
        )
        store = TradingStore(account.name)
        busy = f"account {account.name!r} is being traded by a runtrader; stop it first"
        try:
            with lock_held(f"runtrader-account:{account.pk}", busy=busy):
                if options["dry_run"]:
                    refused = _find_refused(store, batch)
                    if refused is not None:
                        raise CommandError(
                            f"the database refuses {refused['kind']} {refused['record']}: "
                            f"{refused['message']}"
                        )
                    self.stdout.write(f"{path.name}: would store {counts}")
                    return
                fence = AccountFence.take(account, owner_label())  # a stale engine fences out
                try:
                    with transaction.atomic():
                        store.write(batch)
                except DatabaseError as exc:
                    detail = db_error_detail(exc)
                    raise CommandError(
                        f"{path.name} not stored: {detail['message']} (--dry-run names the record)"
                    ) from exc
                finally:
                    fence.release()
        except LockHeld as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{path.name}: stored {counts} for account {account.name!r}")
