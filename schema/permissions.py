"""The permission model (app/permissions.py) in GraphQL: every root field's declared rule, checked by one guard.

A root field declares its rule with `@permit(rule)` (app/permissions.py) under `@strawberry.field`/`@strawberry.mutation` (mutations
with typed errors declare it with `typed_errors(role=…)`, schema/errors.py); a field that declares none is open
to every signed-in user, its answers filtered by clearance (`permissions.ANYONE`). `guard_root_fields()` puts
one `Guard` on every root field of the schema when it is built, so no field can be left out: it checks the rule
before the resolver runs — before the field's input is validated — and answers a refusal as the field's typed
`PermissionDeniedError` when its result has one, else as an error with `extensions.code` PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from strawberry.extensions import FieldExtension
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField
from strawberry.types.union import StrawberryUnion

from app import permissions
from app.errors import PermissionDenied
from app.permissions import Rule
from schema.errors import PermissionDeniedError, user_error

def rule_of(field: StrawberryField) -> Rule:
    return permissions.declared(field.base_resolver.wrapped_func if field.base_resolver is not None else None)


def _typed(field: StrawberryField) -> bool:
    """Whether the field's result is a union with PermissionDeniedError (a mutation's typed errors)."""
    kind = field.type
    return isinstance(kind, StrawberryUnion) and any(t is PermissionDeniedError for t in kind.types)


class Guard(FieldExtension):
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.typed = False

    def apply(self, field: StrawberryField) -> None:
        self.typed = _typed(field)

    def _refusal(self, info: Any) -> Any:
        try:
            permissions.check(info.context.user, self.rule)
        except PermissionDenied as exc:
            if self.typed:
                return user_error(exc)
            raise
        return None

    def resolve(self, next_, source, info, **kwargs):
        refused = self._refusal(info)
        return refused if refused is not None else next_(source, info, **kwargs)

    async def resolve_async(self, next_, source, info, **kwargs):
        refused = self._refusal(info)
        if refused is not None:
            return refused
        return await next_(source, info, **kwargs)


def _root_fields(schema_types: dict[str, type | None]) -> Iterator[tuple[str, StrawberryField]]:
    for operation, root in schema_types.items():
        definition: StrawberryObjectDefinition | None = getattr(root, "__strawberry_definition__", None)
        if definition is not None:
            for field in definition.fields:
                yield operation, field


def guard_root_fields(roots: dict[str, type | None]) -> None:
    """Put the guard of its declared rule on every root field (subscriptions check theirs when they start)."""
    for operation, field in _root_fields(roots):
        if operation != "subscription" and not any(isinstance(e, Guard) for e in field.extensions):
            field.extensions.append(Guard(rule_of(field)))


def entries(roots: dict[str, type | None], name: Callable[[StrawberryField], str]) -> list[permissions.Entry]:
    """Every root field's rule for the permission matrix, its name as the schema spells it (`name`)."""
    return [permissions.Entry("graphql", operation, name(field), rule_of(field),
                              (field.description or "").split("\n")[0].strip())
            for operation, field in _root_fields(roots)]
