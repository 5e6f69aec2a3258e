"""Object-level permission: a user reaches only the accounts granted to them.

Another account's id answers 404, never 403 and never data, so ids cannot be probed.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError

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


def account_or_default(request, pk=None) -> Account:
    """Return the visible account ``pk``; without one, ``DEFAULT_ACCOUNT`` when visible, else the
    only visible account; 400 naming ``account`` when that leaves a choice, 404 with none."""
    if pk is not None and pk != "":
        return account_or_404(request, pk)
    accounts = visible_accounts(request)
    default = accounts.filter(name=settings.DEFAULT_ACCOUNT).first()
    if default is not None:
        return default
    first_two = list(accounts[:2])
    if not first_two:
        raise NotFound(NOT_FOUND)
    if len(first_two) == 1:
        return first_two[0]
    raise ValidationError({"account": ["Required: you can see several accounts."]})
