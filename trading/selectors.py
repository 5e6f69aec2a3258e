"""Reads for trading: account overviews, orders and positions."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from trading.adapters.base import live_trading_blockers
from trading.models import Account, Order, Position, StrategyConfig
from trading.strategy_configs import strategy_config_problems


def account_equity(*, account: Account, positions: list[Position]) -> Decimal:
    """Return cash plus the marked value of positions (average price when no mark exists)."""
    value = sum(
        (
            p.quantity * (p.mark_price if p.mark_price is not None else p.average_price)
            for p in positions
        ),
        Decimal(0),
    )
    return account.cash + value


def accounts_overview(*, user) -> list[dict]:
    """Return the accounts ``user`` may see with trading state, cash, equity, open positions."""
    overview = []
    accounts = (
        Account.objects.visible_to(user)
        .select_related("trading_state")
        .prefetch_related("positions__symbol")
    )
    for account in accounts:
        positions = [p for p in account.positions.all() if p.quantity != 0]
        state = getattr(account, "trading_state", None)
        overview.append(
            {
                "name": account.name,
                "mode": account.mode,
                "state": state.state if state else "active",
                "cash": account.cash,
                "equity": account_equity(account=account, positions=positions),
                "positions": [{"symbol": p.symbol.name, "quantity": p.quantity} for p in positions],
            }
        )
    return overview


def orders_recent(*, user, limit: int = 50) -> list[Order]:
    """Return the most recent orders of the accounts ``user`` may see."""
    orders = Order.objects.filter(account__in=Account.objects.visible_to(user))
    return list(orders.select_related("account", "symbol").order_by("-created_at")[:limit])


def live_trading_blockers_for(*, account: Account) -> list[str]:
    """Return why ``account`` may not trade live (empty when everything is in place)."""
    keys = {
        "binance": (settings.BINANCE_API_KEY, settings.BINANCE_API_SECRET),
        "coinbase": (settings.COINBASE_API_KEY, settings.COINBASE_API_SECRET),
        "kraken": (settings.KRAKEN_API_KEY, settings.KRAKEN_API_SECRET),
    }
    if account.venue in keys:
        return live_trading_blockers(settings.LIVE_TRADING, all(keys[account.venue]),
                                     account.mode, venue=account.venue.upper())  # fmt: skip
    # Not an exchange (the paper venue): it has no keys to name; say what live trading needs.
    blockers = live_trading_blockers(settings.LIVE_TRADING, True, account.mode)
    *most, last = keys
    first = most[0].upper()
    blockers.append(
        f"account venue {account.venue!r} is not a live exchange: live trading needs an "
        f"account on {', '.join(most)} or {last} (mode live) and that exchange's API key and "
        f"secret ({first}_API_KEY and {first}_API_SECRET, or "
        f"{', '.join(name.upper() + '_...' for name in [*most[1:], last])})"
    )
    return blockers


def live_venue_for(*, account: Account):
    """Return the ccxt live venue configured for ``account`` (keys, sandbox, URL override)."""
    from trading.adapters.ccxt_live import CcxtLiveVenue

    venue = account.venue
    prefix = venue.upper()
    url = settings.EXCHANGE_API_URLS.get(venue, "")
    return CcxtLiveVenue(
        venue,
        api_key=getattr(settings, f"{prefix}_API_KEY"),
        secret=getattr(settings, f"{prefix}_API_SECRET"),
        sandbox=settings.EXCHANGE_SANDBOX,
        api_urls={"public": url, "private": url} if url else None,
    )


def engine_status(*, account: Account) -> dict:
    """Return whether a ``runtrader`` runs ``account`` now and what it trades.

    From its stored records: the newest heartbeat (alive when younger than
    ``RUNTIME_HEARTBEAT_STALE``, with its status: running, degraded, ...) and the newest
    ``session_start`` (strategy, symbols, feed, timeframe, start), unless a ``session_end`` follows.
    """
    from monitoring.models import SystemEvent
    from trading.services import RUNTIME_HEARTBEAT_STALE

    events = SystemEvent.objects.filter(component="runtrader", context__account=account.name)
    beat = events.filter(kind="heartbeat").order_by("-ts").first()
    start = events.filter(kind="session_start").order_by("-ts").first()
    end = events.filter(kind="session_end").order_by("-ts").first()
    session = start.context if start and (end is None or end.ts < start.ts) else {}
    alive = beat is not None and beat.ts >= timezone.now() - RUNTIME_HEARTBEAT_STALE
    return {
        "account": account.pk,
        "account_name": account.name,
        "running": bool(alive and session),
        "status": (beat.context.get("status", "running") if alive else "stopped"),
        "last_heartbeat": beat.ts if beat else None,
        "strategy": session.get("strategy", ""),
        "symbols": list(session.get("symbols") or []),
        "feed": session.get("feed", ""),
        "timeframe": session.get("timeframe", ""),
        "started_at": start.ts if session else None,
    }


def strategy_config_named(name: str) -> StrategyConfig:
    """Return the enabled named parameter set ``name``; raise LookupError naming the known ones."""
    row = StrategyConfig.objects.filter(name=name, enabled=True).first()
    if row is None:
        names = StrategyConfig.objects.filter(enabled=True).values_list("name", flat=True)
        known = ", ".join(names)
        raise LookupError(f"no enabled strategy config {name!r} (enabled: {known or 'none'})")
    problems = strategy_config_problems(row.strategy_class, row.params, row.symbols)
    if problems:  # stored past the admin's checks (a shell, a fixture): its fields, not a traceback
        told = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        raise LookupError(
            f"strategy config {name!r} cannot be loaded ({told}); fix it in the admin"
        )
    return row
