"""Roles as Django groups: viewer < trader < admin; a superuser is an admin."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """A role's rank: a higher role includes every lower one."""

    NONE = 0
    VIEWER = 1
    TRADER = 2
    ADMIN = 3

    @property
    def group(self) -> str:
        """Return the Django group name of this role."""
        return self.name.lower()


ROLE_GROUPS = {role.group: role for role in (Role.VIEWER, Role.TRADER, Role.ADMIN)}
_CACHE_ATTR = "_rrr_api_role"


def remember_role(user, role: Role) -> None:
    """Record ``user``'s role, read with the user (``rrr_site.api.authentication``)."""
    setattr(user, _CACHE_ATTR, role)


def role_of(user) -> Role:
    """Return the highest role of ``user`` (NONE for anonymous or inactive users).

    Cached on the user object, so a request asks the database at most once.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Role.NONE
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    if user.is_superuser:
        role = Role.ADMIN
    else:
        names = user.groups.filter(name__in=list(ROLE_GROUPS)).values_list("name", flat=True)
        role = max((ROLE_GROUPS[name] for name in names), default=Role.NONE)
    setattr(user, _CACHE_ATTR, role)
    return role
