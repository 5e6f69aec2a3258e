"""Object-level permission: a user reaches only the accounts granted to them.

Another account's id answers 404, never 403 and never data, so ids cannot be probed.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError

from rrr_site.api import sql
from rrr_site.api.authentication import ACCOUNT_IDS_ATTR
from trading.models import Account

NOT_FOUND = "No such account."


def visible_account_ids(request) -> list[int] | None:
    """Return the ids of the accounts the request's user may see (None: every account).

    Read with the user by ``JWTUserAuthentication``; for other users (a session) asked here.
    """
    user = request.user
    if hasattr(user, ACCOUNT_IDS_ATTR):
        return getattr(user, ACCOUNT_IDS_ATTR)
    if (
        getattr(user, "is_authenticated", False)
        and user.is_active
        and (user.is_staff or user.is_superuser)
    ):
        return None
    return sorted(Account.objects.visible_to(user).values_list("pk", flat=True))


def visible_accounts(request) -> QuerySet[Account]:
    """Return the accounts the request's user may see."""
    user = request.user
    if not hasattr(user, ACCOUNT_IDS_ATTR):
        return Account.objects.visible_to(user)
    ids = getattr(user, ACCOUNT_IDS_ATTR)
    return Account.objects.all() if ids is None else Account.objects.filter(pk__in=ids)


@lru_cache(maxsize=8)
def _account_statement(vendor: str, by: str) -> tuple[str, list[str]]:
    names = [f.attname for f in Account._meta.concrete_fields]
    columns = ", ".join(sql.column(Account, f.name) for f in Account._meta.concrete_fields)
    where = f"{sql.column(Account, by)} = %s"
    return f"SELECT {columns} FROM {sql.table(Account)} WHERE {where}", names


def _account_where(by: str, value) -> Account | None:
    """Return the account whose field ``by`` (id or name) is ``value`` (one indexed read)."""
    statement, names = _account_statement(connection.vendor, by)
    rows = sql.fetch(statement, [value], sql.converters(Account, names))
    return Account.from_db(connection.alias, names, rows[0]) if rows else None


def _visible(request, account: Account | None) -> Account | None:
    ids = visible_account_ids(request)
    if account is None or (ids is not None and account.pk not in ids):
        return None
    return account


def account_or_404(request, pk) -> Account:
    """Return the visible account ``pk``; raise 404 for a foreign, missing or malformed id."""
    try:
        key = int(str(pk))
    except (TypeError, ValueError):
        raise NotFound(NOT_FOUND) from None
    if not 0 < key < 2**63:
        raise NotFound(NOT_FOUND)
    if not getattr(request.user, "is_authenticated", False) or not request.user.is_active:
        raise NotFound(NOT_FOUND)
    account = _visible(request, _account_where("id", key))
    if account is None:
        raise NotFound(NOT_FOUND)
    return account


def accounts_in_scope(request, pk=None) -> QuerySet[Account]:
    """Return the one visible account ``pk`` (404 when not visible) or, without it, all visible."""
    if pk is None or pk == "":
        return visible_accounts(request)
    return Account.objects.filter(pk=account_or_404(request, pk).pk)


def account_ids_in_scope(request, pk=None) -> list[int] | None:
    """Return the id of the visible account ``pk`` (404 when not visible) or, without it, the
    ids of all visible accounts (None: every account)."""
    if pk is None or pk == "":
        if not getattr(request.user, "is_authenticated", False) or not request.user.is_active:
            return []
        return visible_account_ids(request)
    return [account_or_404(request, pk).pk]


def account_or_default(request, pk=None) -> Account:
    """Return the visible account ``pk``; without one, ``DEFAULT_ACCOUNT`` when visible, else the
    only visible account; 400 naming ``account`` when that leaves a choice, 404 with none."""
    if pk is not None and pk != "":
        return account_or_404(request, pk)
    if not getattr(request.user, "is_authenticated", False) or not request.user.is_active:
        raise NotFound(NOT_FOUND)
    named = _account_where("name", settings.DEFAULT_ACCOUNT)
    default = _visible(request, named)
    if default is not None:
        return default
    ids = visible_account_ids(request)
    if ids is None:
        first_two = list(Account.objects.all()[:2])
    else:
        first_two = [ids[0]] if len(ids) == 1 else ids[:2]
    if not first_two:
        raise NotFound(NOT_FOUND)
    if len(first_two) == 1:
        only = first_two[0]
        return only if isinstance(only, Account) else account_or_404(request, only)
    raise ValidationError({"account": ["Required: you can see several accounts."]})
