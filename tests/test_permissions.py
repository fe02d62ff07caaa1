"""The permission model: one declared rule per REST operation and GraphQL root field (app/permissions.py).

- The matrix published at GET /api/auth/permissions/ and docs/permissions.md are the declarations.
- Table-driven: every line of the matrix is called by every role, the REST operation with a body nobody could
  mean and a key nobody has, the GraphQL field with every argument filled: a role the rule refuses gets a 403
  (REST) or PERMISSION_DENIED (GraphQL: the typed error of a mutation that has one) — before its input is looked
  at — and a role it allows is never refused for its role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import (GraphQLEnumType, GraphQLInputObjectType, GraphQLList, GraphQLNonNull, GraphQLScalarType,
                     get_named_type, is_composite_type)

from app import permissions
from app.main import permission_matrix
from app.permissions import ROLES
from schema.permissions import Guard
from schema.schema import ROOTS, schema
from tests.conftest import ROOT

MISSING = "no-such-thing"
ROLE_NAMES = [r.value for r in ROLES]


def test_the_published_page_is_the_declarations():
    page = (ROOT / "docs" / "permissions.md").read_text()
    assert page == permissions.markdown(permission_matrix()) + "\n" or page == permissions.markdown(
        permission_matrix()), "docs/permissions.md is stale: `ikl permissions --markdown > docs/permissions.md`"


def test_every_graphql_root_field_is_guarded_and_in_the_matrix():
    graphql_rows = {(e.operation, e.target) for e in permission_matrix() if e.api == "graphql"}
    gql = schema._schema
    for operation, root in (("query", gql.query_type), ("mutation", gql.mutation_type),
                            ("subscription", gql.subscription_type)):
        for name in root.fields:
            assert (operation, name) in graphql_rows, (operation, name)
    for operation, root in ROOTS.items():
        if operation == "subscription":
            continue
        for field in root.__strawberry_definition__.fields:
            assert sum(isinstance(e, Guard) for e in field.extensions) == 1, field.python_name


async def test_the_matrix_is_served_to_admins(client, admin, viewer):
    r = await client.get("/api/auth/permissions/", headers=admin)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == len(permission_matrix()) == len(body["results"]) and body["roles"] == ROLE_NAMES
    rows = {(e["api"], e["operation"], e["target"]): e for e in body["results"]}
    assert rows[("rest", "POST", "/api/knowledge/learning-patterns/{id}/validate/")]["allowed"] == {
        "viewer": False, "editor": False, "admin": True}
    assert rows[("graphql", "query", "auditLog")]["clearance"] == "RESTRICTED"
    assert rows[("rest", "DELETE", "/api/knowledge/knowledge-articles/{slug}/")]["ownership"]
    assert rows[("rest", "POST", "/api/auth/login/")]["signed_in"] is False
    assert (await client.get("/api/auth/permissions/", headers=viewer)).status_code == 403


# --- table-driven: every line, every role --------------------------------------------------------------

def _refused_rest(r) -> bool:
    return r.status_code == 403 and r.json().get("code") == "PERMISSION_DENIED"


@pytest.mark.parametrize("role", ROLE_NAMES)
async def test_every_rest_operation_answers_each_role_as_the_matrix_says(client, tokens, role):
    user = tokens[f"{role}_user"]
    checked = refused = 0
    for entry in permission_matrix():
        if entry.api != "rest":
            continue
        path = entry.target
        while "{" in path:
            start = path.index("{")
            path = path[:start] + MISSING + path[path.index("}", start) + 1:]
        if entry.target.endswith("/events/") and entry.rule.allows(user):
            continue  # an event stream: its own tests (a missing generation is a 404 there)
        # a body no operation accepts: refused before it is read, or a 400/404 after
        r = await client.request(entry.operation, path, headers=tokens[role], json={"__nobody__": [MISSING]})
        denied = _refused_rest(r)
        assert denied == (not entry.rule.allows(user)), (role, entry.operation, entry.target, r.status_code, r.text)
        assert r.status_code < 500, (entry.operation, entry.target, r.text)
        checked += 1
        refused += denied
    assert checked > 70 and (refused > 30 if role == "viewer" else True), (checked, refused)


def _value(kind) -> Any:
    """A value of a GraphQL input type that names nothing that exists (an ID nobody has, an empty text, 0)."""
    if isinstance(kind, GraphQLNonNull):
        return _value(kind.of_type)
    if isinstance(kind, GraphQLList):
        return []
    if isinstance(kind, GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, GraphQLInputObjectType):
        return {name: _value(f.type) for name, f in kind.fields.items()}
    assert isinstance(kind, GraphQLScalarType)
    return {"Int": 0, "Float": 0.0, "Boolean": False, "ID": MISSING, "String": "", "DateTime": "2026-01-01T00:00:00Z",
            "JSON": {}}.get(kind.name, MISSING)


def _call(operation: str, name: str) -> tuple[str, dict[str, Any]]:
    """A document calling the root field `name` with every argument given (as variables)."""
    root = schema._schema.mutation_type if operation == "mutation" else schema._schema.query_type
    field = root.fields[name]
    variables = {arg: _value(a.type) for arg, a in field.args.items()}
    declared = ", ".join(f"${arg}: {a.type}" for arg, a in field.args.items())
    passed = ", ".join(f"{arg}: ${arg}" for arg in field.args)
    selection = " { __typename ... on UserError { code } }" if is_composite_type(get_named_type(field.type)) else ""
    if selection and not hasattr(get_named_type(field.type), "types"):
        selection = " { __typename }"
    return (f"{operation}{f'({declared})' if declared else ''} {{ {name}{f'({passed})' if passed else ''}"
            f"{selection} }}", variables)


@pytest.mark.parametrize("role", ROLE_NAMES)
async def test_every_graphql_root_field_answers_each_role_as_the_matrix_says(client, tokens, role):
    user = tokens[f"{role}_user"]
    checked = refused = 0
    for entry in permission_matrix():
        if entry.api != "graphql" or entry.operation == "subscription":
            continue  # the subscription is checked when it starts, over WebSocket (tests/test_graphql_ws.py)
        query, variables = _call(entry.operation, entry.target)
        r = await client.post("/graphql", headers=tokens[role], json={"query": query, "variables": variables})
        assert r.status_code in (200, 400), (entry.target, r.text)
        body = r.json()
        value = (body.get("data") or {}).get(entry.target)
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        assert "GRAPHQL_VALIDATION_FAILED" not in codes, (query, body)
        denied = "PERMISSION_DENIED" in codes or (isinstance(value, dict) and
                                                   value.get("__typename") == "PermissionDeniedError")
        assert denied == (not entry.rule.allows(user)), (role, entry.target, body)
        assert "INTERNAL_ERROR" not in codes, (entry.target, body)
        checked += 1
        refused += denied
    assert checked > 60 and (refused > 30 if role == "viewer" else True), (checked, refused)


def test_the_matrix_names_every_rest_route(app):
    declared = {e.target for e in permission_matrix() if e.api == "rest"}
    served = {r.path for r in app.routes if r.path.startswith("/api/")}
    assert {p for p in served if p.endswith("/")} == declared
    assert Path(ROOT / "docs" / "permissions.md").exists()
