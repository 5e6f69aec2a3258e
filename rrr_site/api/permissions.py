"""DRF permission classes of the API: default deny, then one role per kind of request.

Every view names its permission explicitly; ``DenyAll`` is the project default, so a view that
forgets answers 403 to everyone (and the route x role matrix test fails on it). A class's
``required_role(method)`` tells which role a request needs; the matrix test derives each
expected status code from it.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from rrr_site.api.roles import Role, role_of


class DenyAll(BasePermission):
    """Refuse every request: the default for a view that declares no permission class."""

    message = "This endpoint declares no permission class; it is closed."

    def has_permission(self, request, view) -> bool:
        return False


class RolePermission(BasePermission):
    """Allow a request when the user's role reaches the one its method needs."""

    read_role: Role = Role.ADMIN
    write_role: Role = Role.ADMIN

    @classmethod
    def required_role(cls, method: str) -> Role:
        """Return the role a request with HTTP ``method`` needs."""
        return cls.read_role if method.upper() in SAFE_METHODS else cls.write_role

    def has_permission(self, request, view) -> bool:
        needed = self.required_role(request.method)
        self.message = f"This needs the {needed.group} role."
        return role_of(request.user) >= needed


class IsViewer(RolePermission):
    """Viewers and above, for every method."""

    read_role = write_role = Role.VIEWER


class IsTrader(RolePermission):
    """Traders and admins, for every method."""

    read_role = write_role = Role.TRADER


class IsAdminRole(RolePermission):
    """Admins (the ``admin`` group or a superuser) only."""

    read_role = write_role = Role.ADMIN


class ViewerReadsTraderWrites(RolePermission):
    """Viewers read (GET/HEAD/OPTIONS); traders write."""

    read_role, write_role = Role.VIEWER, Role.TRADER


class ViewerReadsAdminWrites(RolePermission):
    """Viewers read; admins write."""

    read_role, write_role = Role.VIEWER, Role.ADMIN


class TraderReadsAdminWrites(RolePermission):
    """Traders read; admins write (e.g. risk limits)."""

    read_role, write_role = Role.TRADER, Role.ADMIN
