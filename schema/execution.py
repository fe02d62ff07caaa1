"""GraphQL execution with plain leaves at their floor.

graphql-core resolves every field the same way: it looks the field up, builds a `GraphQLResolveInfo`,
reads its arguments, calls the resolver through the middleware, checks for an awaitable and completes the
value through the non-null, list and leaf cases — about 5 µs of Python for each attribute, which on a page
of 20 incidents with 20 fields is most of the request (bench/graphql_bench.py).

A *plain leaf* is a field Strawberry resolves by reading an attribute (no resolver, no field extension —
so no guard: guards sit on root fields, schema/permissions.py), with no arguments, no middleware and a
scalar or enum type, or a list of them, nullable or not. `LeafFastPath` answers those by reading the
attribute and coercing it as graphql-core would (`coerce_output_value`; a String or ID that is a str, a
Boolean that is a bool, is its own answer with no call; a Strawberry enum's member named from a table), the
plan per (type, field) made once per process and an object's plans looked up once per selected field set
(the items of a list share one). An object whose selected fields are all plain leaves is answered in one
loop, and a list of such objects (a page's `results`) item by item in another, without graphql-core's
completion per item. Anything else — and a plain leaf whose value is not what its type allows (a null where
one is not allowed, a value the scalar refuses), an item that is null where none is allowed or not of its
type — takes graphql-core's own path, which raises the error it always raised, located as always. The answer
is the same document; only the work per field differs.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from graphql import (GraphQLBoolean, GraphQLID, GraphQLLeafType, GraphQLList, GraphQLNonNull, GraphQLObjectType,
                     GraphQLString, is_leaf_type)
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter

_NO_PLAN = object()
_REFUSED = object()  # the fast path declines: graphql-core's own path answers (and raises what it raises)
Complete = Callable[[Any], Any]


class Leaf(NamedTuple):
    """How one plain leaf is answered: `read(source, attr)`, then the value itself when its type is `itself`, else
    `complete(value)` (_REFUSED when graphql-core's path must answer)."""
    read: Callable[[Any, str], Any]
    attr: str
    itself: type | None
    complete: Complete

    def answer(self, source: Any) -> Any:
        value = self.read(source, self.attr)
        return value if type(value) is self.itself else self.complete(value)


# built-in scalars whose coercion answers a value of this exact Python type with the value itself (String and ID a
# str, Boolean a bool): that value is the answer, with no call (Int and Float check their range: coerced)
_ITSELF = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _coerce(kind: GraphQLLeafType) -> Complete:
    """The leaf's coercion, graphql-core's, but for a Strawberry enum's own members: their names looked up in a
    table (Strawberry's coercion compares the member with each value of the enum in turn)."""
    coerce = kind.coerce_output_value
    if not isinstance(kind, CustomGraphQLEnumType):
        return coerce
    wrapped, names = kind.wrapped_cls, {}
    for member in wrapped:
        found = next((name for name, v in kind.values.items() if member.value == v.value), None)
        if found is not None:
            names[member] = found

    def coerce_enum(value: Any) -> Any:
        return names[value] if type(value) is wrapped and value in names else coerce(value)
    return coerce_enum


def _leaf(kind: GraphQLLeafType, nullable: bool) -> tuple[type | None, Complete]:
    """(the Python type that is its own answer, how any other value is completed) for a leaf of `kind`."""
    coerce = _coerce(kind)
    itself = _ITSELF.get(kind)

    def complete(value: Any) -> Any:
        if value is None:
            return None if nullable else _REFUSED
        if type(value) is itself:
            return value
        out = coerce(value)
        return _REFUSED if out is None or out is Undefined else out
    return itself, complete


def completion(kind: Any) -> tuple[type | None, Complete] | None:
    """How to complete a value of `kind` without graphql-core's machinery — (the Python type that is its own
    answer, or None; the completion of any other value) — for a leaf or a list of leaves (each nullable or not);
    None for anything else."""
    nullable = not isinstance(kind, GraphQLNonNull)
    inner = kind if nullable else kind.of_type
    if is_leaf_type(inner):
        return _leaf(inner, nullable)
    if not isinstance(inner, GraphQLList):
        return None
    item = inner.of_type
    item_nullable = not isinstance(item, GraphQLNonNull)
    item = item if item_nullable else item.of_type
    if not is_leaf_type(item):
        return None
    same, one = _leaf(item, item_nullable)

    def complete_list(value: Any) -> Any:
        if value is None:
            return None if nullable else _REFUSED
        if isinstance(value, (str, bytes, dict)):
            return _REFUSED
        if type(value) is list and same is not None and all(type(v) is same for v in value):
            return value  # every item its own answer (a list of str for [String!]): the list as it is
        out = [one(v) for v in value]
        return _REFUSED if any(v is _REFUSED for v in out) else out
    return None, complete_list


class LeafFastPath(StrawberryGraphQLCoreExecutionContext):
    """The execution context of the schema (module docstring)."""

    def _plan(self, parent_type: GraphQLObjectType, name: str) -> Leaf | None:
        field_def = self.schema.get_field(parent_type, name)
        if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
            return None
        if self.middleware_manager is not None and \
                self.middleware_manager.get_field_resolver(field_def.resolve) is not field_def.resolve:
            return None
        field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        how = completion(field_def.type)
        if field is None or how is None or field.base_resolver is not None or field.extensions:
            return None
        return Leaf(field.default_resolver, field.python_name, *how)

    def _plan_for(self, parent_type: GraphQLObjectType, node: Any) -> Leaf | None:
        if node.arguments:
            return None
        plans = self.schema.__dict__.setdefault("_leaf_plans", {})  # per schema, made once per process
        key = (parent_type.name, node.name.value)
        plan = plans.get(key, _NO_PLAN)
        if plan is _NO_PLAN:
            plan = plans[key] = self._plan(parent_type, node.name.value)
        return plan

    def _object_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Leaf]] | None:
        """The plans of an object's selected fields, when all are plain leaves. graphql-core collects a list's
        items' field set once, so the items of a page share it: looked up here by its identity, per request."""
        kept = self.__dict__.setdefault("_object_plans", {})
        key = (id(grouped_field_set), parent_type.name)
        if key not in kept:  # the set is kept with its plans, so its id is not reused during the request
            plans = [(name, self._plan_for(parent_type, details[0].node))
                     for name, details in grouped_field_set.items()]
            kept[key] = (grouped_field_set, None if any(p is None for _, p in plans) else plans)
        return kept[key][1]

    @staticmethod
    def _answer(plans: list[tuple[str, Leaf]], source: Any) -> Any:
        """The object's answer by its plans, or _REFUSED when a leaf is refused or raises. The loop is
        `Leaf.answer` written out: a page answers hundreds of leaves, and a call per leaf is what it saves."""
        results: dict[str, Any] = {}
        try:
            for response_name, (read, attr, itself, complete) in plans:
                value = read(source, attr)
                if type(value) is not itself:
                    value = complete(value)
                    if value is _REFUSED:
                        return _REFUSED
                results[response_name] = value
        except Exception:  # noqa: BLE001 - graphql-core's path raises it, located
            return _REFUSED
        return results

    def execute_fields(self, parent_type, source_value, path, grouped_field_set,  # type: ignore[override]
                       position_context):
        """An object whose selected fields are all plain leaves: its answer at once (no path, no awaitable
        bookkeeping, no call per field for a value that is its own answer); else graphql-core's, each field
        through `execute_field`. A leaf the fast path refuses, or one that raises, sends the whole object down
        graphql-core's path, which raises the error it always raised, located."""
        plans = self._object_plan(parent_type, grouped_field_set)
        if plans is not None and (answer := self._answer(plans, source_value)) is not _REFUSED:
            return answer
        return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)

    def complete_iterable_value(self, item_type, field_details_list, info, path, items,  # type: ignore[override]
                                position_context):
        """A list of objects (a page's `results`) whose selected fields are all plain leaves: each item answered
        as `execute_fields` answers it, without graphql-core's completion per item; else graphql-core's own."""
        answered = self._leaf_objects(item_type, field_details_list, info, path, items, position_context)
        if answered is not None:
            return answered
        return super().complete_iterable_value(item_type, field_details_list, info, path, items, position_context)

    def _leaf_objects(self, item_type, field_details_list, info, path, items, position_context) -> list | None:
        nullable = not isinstance(item_type, GraphQLNonNull)
        object_type = item_type if nullable else item_type.of_type
        if type(items) is not list or position_context is not None or not isinstance(object_type, GraphQLObjectType) \
                or self.get_stream_usage(field_details_list, path) is not None:
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type, field_details_list)
        plans = None if new_defer_usages else self._object_plan(object_type, grouped_field_set)
        if plans is None:
            return None
        is_type_of = object_type.is_type_of
        out = []
        for item in items:
            if item is None and nullable:
                out.append(None)
                continue
            if item is None or (is_type_of is not None and is_type_of(item, info) is not True):
                return None  # graphql-core's path raises the error, located
            if (answer := self._answer(plans, item)) is _REFUSED:
                return None
            out.append(answer)
        return out

    def execute_field(self, parent_type, source, field_details_list, path, position_context):  # type: ignore[override]
        plan = self._plan_for(parent_type, field_details_list[0].node)
        if plan is not None:
            try:
                value = plan.answer(source)
            except Exception:  # noqa: BLE001 - graphql-core's path raises it, located
                value = _REFUSED
            if value is not _REFUSED:
                return value
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
