"""Every route under /api/ x every role: the status code each cell must answer.

The expected code derives from each view's declared permission class (``required_role`` of
``rrr_site.api.permissions.RolePermission``, or ``AllowAny``), so new routes join the matrix
on their own; a view with any other permission (or none) fails here.
Anonymous -> 401; a role below the one needed -> 403; otherwise never 401/403/5xx, and
another account's trader gets 404 for the account in the path or in ``?account=``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from rrr_site.api.permissions import RolePermission
from rrr_site.api.roles import Role
from tests.rrr_site.api.conftest import bearer_client

pytestmark = pytest.mark.django_db
ROLES = {"anonymous": Role.NONE, "viewer": Role.VIEWER, "trader": Role.TRADER, "admin": Role.ADMIN}
HTML_PAGES = {"api/docs/", "api/redoc/"}  # login_required pages: anonymous is sent to log in
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    pattern: str  # e.g. "api/v1/accounts/<int:pk>/halt"
    callback: object

    @property
    def view_class(self):
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)


def api_routes() -> list[Route]:
    """Return every URL pattern under api/ in the root resolver."""
    found: list[Route] = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                found.append(Route(prefix + str(entry.pattern), entry.callback))

    walk(get_resolver().url_patterns, "")
    return [r for r in found if r.pattern.startswith("api/")]


def needed_role(view_class, method: str) -> Role:
    """Return the role a request needs, from the view's declared permission classes."""
    classes = list(getattr(view_class, "permission_classes", []))
    assert classes, f"{view_class.__name__} declares no permission class"
    roles = []
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, RolePermission):
            roles.append(cls.required_role(method))
        elif cls is AllowAny:
            roles.append(Role.NONE)
        else:
            pytest.fail(f"{view_class.__name__}: use a RolePermission or AllowAny, not {cls!r}")
    return max(roles)


def handlers(view_class) -> list[str]:
    return [m for m in METHODS if hasattr(view_class, m) and m in view_class.http_method_names]


def account_query_operations() -> set[tuple[str, str]]:
    """Return (path, method) of the operations documented with an ``account`` query parameter."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            if "account" in names:
                found.add((path, method))
    return found


@pytest.fixture
def ids(world):
    from tests.factories import OrderFactory

    order = OrderFactory(account=world.paper, symbol=world.btc, status="open")
    return {"accounts": world.paper.pk, "orders": order.pk}


def concrete(pattern: str, ids: dict) -> str:
    """Fill a pattern's converters: the paper account's objects, else a missing id."""

    def value(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "int":
            before = pattern[: match.start()].rstrip("/").rsplit("/", 1)[-1]
            return str(ids.get(before, 987654321))
        return "BTC-USD" if name == "symbol" else "x"

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", value, pattern).strip("^$")


def test_every_api_route_is_a_drf_view_or_a_login_page():
    routes = api_routes()
    assert len(routes) > 20
    for route in routes:
        if route.pattern in HTML_PAGES:
            continue
        assert route.view_class is not None and issubclass(route.view_class, APIView), route
        for method in handlers(route.view_class):
            needed_role(route.view_class, method)


def _cell(client, method: str, url: str):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, {}, format="json")


def test_route_role_matrix(world, ids):
    clients = {role: bearer_client(world.users.get(role)) for role in ROLES}
    clients["other_trader"] = bearer_client(world.users["other_trader"])
    scoped = account_query_operations()
    assert ("/api/v1/portfolio", "get") in scoped and ("/api/v1/trades", "get") in scoped
    failures = []
    for route in api_routes():
        if route.pattern in HTML_PAGES:
            response = clients["anonymous"].get("/" + route.pattern)
            if response.status_code != 302:
                failures.append((route.pattern, "anonymous", response.status_code, 302))
            continue
        url = concrete(route.pattern, ids)
        in_path = any(f"/{key}/<int:" in "/" + route.pattern for key in ids)
        for method in handlers(route.view_class):
            need = needed_role(route.view_class, method)
            for role, rank in ROLES.items():
                code = _cell(clients[role], method, url).status_code
                expected = _expected(rank, need)
                if not _matches(code, expected):
                    failures.append((method.upper(), url, role, code, expected))
            if need <= Role.TRADER:
                failures += _other_account_cells(
                    clients["other_trader"], method, url, route, in_path, scoped, world
                )
    assert not failures, "\n".join(map(str, failures))


def _expected(rank: Role, need: Role) -> str:
    if rank < need:
        return "401" if rank is Role.NONE else "403"
    return "allowed"


def _matches(code: int, expected: str) -> bool:
    if expected == "allowed":
        return code not in (401, 403) and code < 500
    return str(code) == expected


def _other_account_cells(client, method, url, route, in_path, scoped, world) -> list:
    """The other account's trader: 404 for paper's id in the path or in ?account=."""
    failures = []
    if in_path:
        code = _cell(client, method, url).status_code
        if code != 404:
            failures.append((method.upper(), url, "other_trader", code, "404"))
    versioned = re.sub(r"^api/(?!v1/)", "api/v1/", route.pattern)  # aliases: as /api/v1/
    schema_path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", versioned)
    if (schema_path, method) in scoped:
        sep = "&" if "?" in url else "?"
        probe = f"{url}{sep}account={world.paper.pk}"
        code = _cell(client, method, probe).status_code
        if code != 404:
            failures.append((method.upper(), probe, "other_trader", code, "404"))
    return failures
