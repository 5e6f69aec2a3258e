"""JWT authentication that reads the user, their role and their accounts in one query.

simplejwt's ``JWTAuthentication`` loads the user with the ORM; the role (group membership) and
the account grants then cost a query each, and every one of these ORM queries costs more CPU
to build than the database takes to answer it. This class validates the token exactly as
simplejwt does (signature, expiry, token type, user id claim, active user, revoked-by-password
claim when configured) and reads the user row, their role groups and the ids of the accounts
granted to them with one statement, on every request: nothing about the user is cached between
requests, so a deactivated user, a removed group or a withdrawn grant counts at once.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from rrr_site.api import sql
from rrr_site.api.roles import ROLE_GROUPS, Role, remember_role
from trading.models import Account

ACCOUNT_IDS_ATTR = "_rrr_account_ids"  # None: every account (staff and superusers)


@lru_cache(maxsize=4)
def _user_statement(vendor: str) -> tuple[str, list[str]]:
    """Return the SQL reading a user by id with its role groups and account ids (comma
    separated), and the user's field names in column order."""
    user = get_user_model()
    fields = list(user._meta.concrete_fields)
    memberships, group = user.groups.through, user.groups.field.related_model
    grants = Account.members.through
    q = connection.ops.quote_name

    def col(model, name: str) -> str:
        return q(model._meta.get_field(name).column)

    users = sql.table(user)
    user_pk = f"{users}.{q(user._meta.pk.column)}"
    group_fk = col(memberships, user.groups.field.m2m_reverse_field_name())
    group_user = col(memberships, user.groups.field.m2m_field_name())
    grant_account = col(grants, Account.members.field.m2m_field_name())
    grant_user = col(grants, Account.members.field.m2m_reverse_field_name())
    group_name = f"g.{q('name')}"
    role_names = ", ".join(f"'{name}'" for name in ROLE_GROUPS)  # fixed identifiers, no input
    role_groups = (
        f"SELECT {sql.string_agg(group_name)} FROM {sql.table(memberships)} ug "
        f"JOIN {sql.table(group)} g ON g.{q(group._meta.pk.column)} = ug.{group_fk} "
        f"WHERE ug.{group_user} = {user_pk} AND {group_name} IN ({role_names})"
    )
    account_ids = (
        f"SELECT {sql.string_agg(f'CAST(m.{grant_account} AS TEXT)')} "
        f"FROM {sql.table(grants)} m WHERE m.{grant_user} = {user_pk}"
    )
    statement = (
        f"SELECT {', '.join(f'{users}.{q(f.column)}' for f in fields)}, "
        f"({role_groups}), ({account_ids}) "
        f"FROM {users} WHERE {users}.{col(user, api_settings.USER_ID_FIELD)} = %s"
    )
    return statement, [f.attname for f in fields]


def load_user(user_id):
    """Return the user ``user_id`` with its role and visible account ids attached, or None."""
    user_model = get_user_model()
    user_id = user_model._meta.get_field(api_settings.USER_ID_FIELD).get_prep_value(user_id)
    statement, names = _user_statement(connection.vendor)
    rows = sql.fetch(statement, [user_id], sql.converters(user_model, names))
    if not rows:
        return None
    *values, groups, accounts = rows[0]
    user = user_model.from_db(connection.alias, names, values)
    role = max((ROLE_GROUPS[g] for g in (groups or "").split(",") if g), default=Role.NONE)
    remember_role(user, Role.ADMIN if user.is_superuser else role)
    if user.is_staff or user.is_superuser:
        setattr(user, ACCOUNT_IDS_ATTR, None)
    else:
        setattr(user, ACCOUNT_IDS_ATTR, sorted({int(a) for a in (accounts or "").split(",") if a}))
    return user


class JWTUserAuthentication(JWTAuthentication):
    """simplejwt's bearer-token authentication, its user read in one statement."""

    def get_user(self, validated_token):
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        try:
            user = load_user(user_id)
        except (ValueError, TypeError, OverflowError):
            user = None  # a claim that is no valid id for the column finds nobody
        if user is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                "The user's password has been changed.", code="password_changed"
            )
        return user
