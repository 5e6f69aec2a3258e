"""Object-level permission: a user reaches only the accounts granted to them.

Another account's id answers 404, never 403 and never data, so ids cannot be probed.
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from trading.models import Account

NOT_FOUND = "No such account."


def visible_accounts(request) -> QuerySet[Account]:
    """Return the accounts the request's user may see."""
    return Account.objects.visible_to(request.user)


def account_or_404(request, pk) -> Account:
    """Return the visible account ``pk``; raise 404 for a foreign, missing or malformed id."""
    try:
        key = int(str(pk))
    except (TypeError, ValueError):
        raise NotFound(NOT_FOUND) from None
    if not 0 < key < 2**63:
        raise NotFound(NOT_FOUND)
    account = visible_accounts(request).filter(pk=key).first()
    if account is None:
        raise NotFound(NOT_FOUND)
    return account


def accounts_in_scope(request, pk=None) -> QuerySet[Account]:
    """Return the one visible account ``pk`` (404 when not visible) or, without it, all visible."""
    if pk is None or pk == "":
        return visible_accounts(request)
    return Account.objects.filter(pk=account_or_404(request, pk).pk)
