"""``manage.py risk report [--account NAME] [--json]``: the account's risk at a glance."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.services import to_jsonable
from trading.models import Account


class Command(BaseCommand):
    help = "Risk tools. `risk report`: exposures, VaR/CVaR, drawdown, limit use, trading state."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        report = sub.add_parser("report", help="Print the risk report of an account")
        report.add_argument(
            "--account",
            default=settings.DEFAULT_ACCOUNT,
            help="Account to report on (default: DEFAULT_ACCOUNT)",
        )
        report.add_argument("--json", action="store_true", help="Print JSON")

    def handle(self, *args, **options) -> None:
        from risk.selectors import risk_report  # numpy: loaded for the report, not for --help

        try:
            account = Account.objects.get(name=options["account"])
        except Account.DoesNotExist as exc:
            known = ", ".join(Account.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no account {options['account']!r} (known: {known})") from exc
        report = risk_report(account=account)
        if options["json"]:
            self.stdout.write(json.dumps(to_jsonable(report), indent=2))
            return
        self._print(report)

    def _print(self, r: dict) -> None:
        """Render the report as text."""
        w = self.stdout.write
        w(f"account {r['account']} ({r['mode']})  state: {r['state'].upper()}")
        w(f"cash {r['cash']:.2f}  equity {r['equity']:.2f}")
        w("exposure (fraction of equity):")
        for symbol, frac in sorted(r["exposure"].items()) or [("-", 0)]:
            w(f"  {symbol:<12} {float(frac):+.4f}")
        dd = r["drawdown"]
        w(
            f"drawdown: current {dd['current']:.2%}  max {dd['maximum']:.2%}"
            if dd
            else "drawdown: n/a"
        )
        var = r["var"]
        if var:
            w(
                f"VaR 95% hist {var['historical_var_95']:.2f}"
                f" / param {var['parametric_var_95']:.2f}"
                f"  CVaR 95% hist {var['historical_cvar_95']:.2f}"
            )
            w(
                f"VaR 99% hist {var['historical_var_99']:.2f}"
                f" / param {var['parametric_var_99']:.2f}"
                f"  CVaR 99% hist {var['historical_cvar_99']:.2f}"
            )
        else:
            w("VaR/CVaR: n/a (no positions or fewer than 20 returns)")
        w("limits:")
        for lim in r["limits"]:
            used = "n/a (per order)" if lim["used"] is None else f"{lim['used']:.4f}"
            util = "" if lim["utilisation"] is None else f" ({lim['utilisation']:.0%})"
            w(
                f"  {lim['kind']:<24} {lim['scope']:<8} limit {lim['value']:<14.6g}"
                f" used {used}{util}"
                f"  -> {lim['action']}"
            )
