"""The permission model: one declared rule per REST operation and GraphQL root field, checked by one function.

A `Rule` says who may call an operation:

- `role`: the least role (viewer < editor < admin);
- `clearance`: the least clearance, for the few operations whose answers cannot be filtered by classification
  (the audit log quotes documents of every classification);
- `ownership`: a rule on the document itself, which its domain service checks once it has loaded it ("the
  author or an admin may delete", "the approver or an admin may approve") — described here, for the matrix;
- `classified`: whether what it answers or changes is limited to the classifications the caller is cleared for
  (a document above the clearance is a 404, like a missing one; counts, statistics and search terms too).

REST operations declare theirs on `Op` (app/http/resources.py), GraphQL root fields with `@permit` or
`typed_errors(role=…)` (schema/permissions.py); both are checked by `check()` before the body or the input is
read or validated. `matrix_json()` lists every declared rule: `GET /api/auth/permissions/`, and `docs/permissions.md`
(`ikl permissions --markdown`), are made from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from app.errors import PermissionDenied
from app.users.models import Classification, Role, User, require_role

ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Rule:
    role: Role = Role.VIEWER
    clearance: Classification | None = None
    ownership: str = ""
    classified: bool = True
    signed_in: bool = True  # False: reached without signing in (signing in itself)
    note: str = ""

    def allows(self, user: User) -> bool:
        """Whether the user may call it (before any document is looked at)."""
        return user.has_role(self.role) and (self.clearance is None or user.clearance.rank >= self.clearance.rank)

    def describe(self) -> dict[str, Any]:
        return {"role": self.role.value, "clearance": self.clearance.value if self.clearance else None,
                "ownership": self.ownership or None, "classified": self.classified, "signed_in": self.signed_in,
                "note": self.note or None}


ANYONE = Rule()  # any signed-in user; what it answers is filtered by their clearance


def rule(declared: Rule | Role | None) -> Rule:
    """A declaration as a Rule (a bare Role is the rule of that role)."""
    if declared is None:
        return ANYONE
    return declared if isinstance(declared, Rule) else Rule(role=declared)


_ATTRIBUTE = "__permission_rule__"


def permit(declared: Rule | Role) -> Callable[[F], F]:
    """Declare who may call a function (a GraphQL root field's resolver: put it under the strawberry decorator)."""
    def mark(fn: F) -> F:
        setattr(fn, _ATTRIBUTE, rule(declared))
        return fn
    return mark


def declared(fn: Callable[..., Any] | None) -> Rule:
    """The rule `permit` declared on `fn` (none: ANYONE)."""
    return getattr(fn, _ATTRIBUTE, None) or ANYONE


def check(user: User, declared: Rule | Role | None) -> User:
    """403 unless the user may call an operation with this rule (every API, before its input is read)."""
    r = rule(declared)
    require_role(user, r.role)
    if r.clearance is not None and user.clearance.rank < r.clearance.rank:
        raise PermissionDenied(f"This needs the clearance {r.clearance.value}",
                               {"clearance": user.clearance.value, "required": r.clearance.value})
    return user


@dataclass(frozen=True)
class Entry:
    """One line of the matrix: a REST operation (`api` "rest": method and path) or a GraphQL root field (`api`
    "graphql": operation type and field name), with its rule and one line of what it does."""

    api: str
    operation: str   # GET, POST, … or query, mutation, subscription
    target: str      # the path, or the field name
    rule: Rule
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"api": self.api, "operation": self.operation, "target": self.target, "summary": self.summary,
                **self.rule.describe(),
                "allowed": {role.value: self.rule.role.rank <= role.rank for role in ROLES}}


def matrix_json(entries: Iterable[Entry]) -> dict[str, Any]:
    results = [e.as_dict() for e in entries]
    return {"count": len(results), "roles": [r.value for r in ROLES], "results": results}


def markdown(entries: Iterable[Entry]) -> str:
    """The matrix as the page `docs/permissions.md` (generated: `ikl permissions --markdown`)."""
    entries = list(entries)
    lines = ["# Permissions", "",
             "Generated from the declarations (`ikl permissions --markdown > docs/permissions.md`; `GET /api/auth/permissions/` serves "
             "the same matrix to admins). Do not edit by hand: `tests/test_permissions.py` fails when this page "
             "and the declarations differ.", "",
             "Every operation needs a signed-in user (a token, a session or an SSO bearer token). *Role* is the "
             "least role that may call it (viewer < editor < admin), checked before the request's body or input "
             "is read. *Classified*: what it answers or changes is limited to the caller's clearance — a document "
             "above it is a 404, like a missing one. *Ownership*: the rule on the document that its service "
             "checks once it has loaded it.", ""]
    for api, title in (("rest", "REST"), ("graphql", "GraphQL root fields")):
        rows = [e for e in entries if e.api == api]
        lines += [f"## {title} ({len(rows)})", "",
                  "| Operation | Target | viewer | editor | admin | Clearance | Classified | Ownership |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in rows:
            d = e.as_dict()
            marks = " | ".join("yes" if d["allowed"][r.value] else "—" for r in ROLES)
            if not e.rule.signed_in:
                marks = "anyone, not signed in too | yes | yes"
            lines.append(f"| {e.operation} | `{e.target}` | {marks} | {d['clearance'] or ''} | "
                         f"{'yes' if e.rule.classified else 'no'} | {e.rule.ownership} |")
        lines.append("")
    return "\n".join(lines)
