"""What a GraphQL document may ask for, measured before it is validated or executed.

`analyse()` walks the document once. Each fragment is measured once per context (memoised) and its
figures multiplied where it is spread, so a document whose fragments fan out exponentially is
measured in time linear in its size and rejected in milliseconds (graphql-core's own validation,
and Strawberry's depth and alias limiters, expand fragments instead).

Figures, over every operation and fragment of the document (validation visits them all):
- depth: the deepest chain of fields (introspection fields not counted; see below);
- aliases: aliased fields in the expanded document;
- cost: every field costs 1, plus its sub-selection times the number of objects the field can
  return — the `pageSize` / `limit` / `first` argument where the field has one, directly or in an
  input object (its default when not given), `LIST_FACTOR` for another list, 1 for a single object. The list of a page
  (`results` under a field sized by `pageSize`) is already counted by that argument;
- repeats: how often one response key occurs in one selection set (graphql-core compares those
  fields pairwise, so a thousand copies of one field cost it a second);
- introspection nesting: `fields`, `inputFields`, `interfaces`, `possibleTypes` lists nested in
  one another (at most 3, as graphql-js's MaxIntrospectionDepthRule).

For the operation that runs, `root_fields` counts its root fields by rate class (every alias, and
every copy a fragment brings): a mutation field is a write, a search field a search, any other
field a read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from graphql import (DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLSchema,
                     InlineFragmentNode, IntValueNode, ObjectValueNode, OperationDefinitionNode, OperationType, SelectionSetNode,
                     VariableNode, get_named_type, get_nullable_type, is_list_type)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef

SIZE_ARGUMENTS = ("pageSize", "limit", "first")
LIST_FACTOR = 20
INTROSPECTION_LISTS = {"fields", "inputFields", "interfaces", "possibleTypes"}
MAX_INTROSPECTION_NESTING = 3


@dataclass(frozen=True)
class Limits:
    max_depth: int = 10
    max_aliases: int = 30
    max_cost: int = 5000
    max_root_fields: int = 30
    max_repeats: int = 10


class LimitExceeded(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


@dataclass
class Figures:
    depth: int = 0
    aliases: int = 0
    cost: int = 0
    introspection: int = 0

    def add(self, other: "Figures", *, times: int = 1, deeper: int = 0) -> None:
        self.depth = max(self.depth, other.depth + deeper)
        self.aliases += other.aliases
        self.cost += other.cost * times
        self.introspection = max(self.introspection, other.introspection)


@dataclass
class Analysis:
    operation: OperationDefinitionNode
    figures: Figures
    root_fields: Counter = field(default_factory=Counter)

    @property
    def operation_type(self) -> OperationType:
        return self.operation.operation


class _Walker:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any],
                 limits: Limits):
        self.schema = schema
        self.variables = variables
        self.limits = limits
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[tuple[str, bool, bool], Figures] = {}
        self.visiting: set[str] = set()

    def fragment(self, name: str, paged: bool, introspecting: bool) -> Figures:
        key = (name, paged, introspecting)
        if key in self.memo:
            return self.memo[key]
        definition = self.fragments.get(name)
        if definition is None:
            return Figures()  # an unknown fragment: validation reports it
        if name in self.visiting:
            raise LimitExceeded("GRAPHQL_VALIDATION_FAILED", f"Cannot spread fragment '{name}' within itself.",
                                {"fragment": name})
        self.visiting.add(name)
        parent = self.schema.get_type(definition.type_condition.name.value)
        figures = self.selection_set(definition.selection_set, parent, paged, introspecting)
        self.visiting.discard(name)
        self.memo[key] = figures
        return figures

    def selection_set(self, selection_set: SelectionSetNode | None, parent: Any, paged: bool,
                      introspecting: bool) -> Figures:
        out = Figures()
        if selection_set is None:
            return out
        keys: Counter = Counter()
        for sel, sel_parent in self._flatten(selection_set, parent):
            if isinstance(sel, FragmentSpreadNode):
                out.add(self.fragment(sel.name.value, paged, introspecting))
                continue
            keys[(sel.alias or sel.name).value] += 1
            out.add(self.field(sel, sel_parent, paged, introspecting))
        if keys and (worst := max(keys.values())) > self.limits.max_repeats:
            raise LimitExceeded("QUERY_TOO_COMPLEX", f"A field is selected {worst} times in one selection set "
                                f"(at most {self.limits.max_repeats})",
                                {"limit": "repeats", "value": worst, "max": self.limits.max_repeats})
        return out

    def _flatten(self, selection_set: SelectionSetNode, parent: Any) -> Iterable[tuple[Any, Any]]:
        """Fields and named spreads of a selection set with their parent type, inline fragments
        opened (graphql-core compares the fields they bring with the others, too)."""
        for sel in selection_set.selections:
            if isinstance(sel, InlineFragmentNode):
                narrowed = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                yield from self._flatten(sel.selection_set, narrowed)
            else:
                yield sel, parent

    def field(self, node: FieldNode, parent: Any, paged: bool, introspecting: bool) -> Figures:
        name = node.name.value
        definition = self._definition(parent, name)
        own = Figures(aliases=1 if node.alias else 0, cost=1)
        if node.selection_set is None:
            return own
        if definition is None:  # an unknown field (validation reports it): measured all the same
            own.add(self.selection_set(node.selection_set, None, False, introspecting), deeper=1)
            return own
        child_type = get_named_type(definition.type)
        inside = introspecting or name in ("__schema", "__type")
        size = self._size(node, definition)
        if size is not None:
            times, child_paged = size, True
        elif is_list_type(get_nullable_type(definition.type)):
            times, child_paged = (1 if paged or inside else LIST_FACTOR), False
        else:
            times, child_paged = 1, False
        sub = self.selection_set(node.selection_set, child_type, child_paged, inside)
        if inside and name in INTROSPECTION_LISTS:
            sub.introspection += 1
        own.add(sub, times=times, deeper=0 if inside else 1)
        return own

    def _definition(self, parent: Any, name: str) -> Any:
        if name == "__typename":
            return TypeNameMetaFieldDef
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        fields = getattr(parent, "fields", None)
        return fields.get(name) if fields else None

    def _size(self, node: FieldNode, definition: Any) -> int | None:
        """How many objects the field returns at most, from its size argument — a direct one
        (`pageSize: 50`) or a field of an input object (`input: {limit: 50}`); its default when not
        given; None when the field has no size argument."""
        given = {arg.name.value: arg.value for arg in node.arguments or ()}
        for arg_name, arg in definition.args.items():
            if arg_name in SIZE_ARGUMENTS:
                return self._positive(given.get(arg_name), arg.default_value)
            input_fields = getattr(get_named_type(arg.type), "fields", None)
            if not isinstance(input_fields, dict):
                continue
            inner = next((n for n in SIZE_ARGUMENTS if n in input_fields), None)
            if inner is None:
                continue
            default = input_fields[inner].default_value
            value = given.get(arg_name)
            if isinstance(value, VariableNode):
                obj = self.variables.get(value.name.value)
                return self._positive(obj.get(inner) if isinstance(obj, dict) else None, default)
            if isinstance(value, ObjectValueNode):
                node_value = next((f.value for f in value.fields if f.name.value == inner), None)
                return self._positive(node_value, default)
            return self._positive(None, default)
        return None

    def _positive(self, value: Any, default: Any) -> int:
        if isinstance(value, IntValueNode):
            value = int(value.value)
        elif isinstance(value, VariableNode):
            value = self.variables.get(value.name.value)
        elif value is None:
            value = default
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    def root_fields(self, selection_set: SelectionSetNode, kind_of, memo: dict[str, Counter]) -> Counter:
        """Root fields by rate class, every copy counted (fragments have no cycles: measured first)."""
        counts: Counter = Counter()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                counts[kind_of(sel.name.value)] += 1
            elif isinstance(sel, InlineFragmentNode):
                counts += self.root_fields(sel.selection_set, kind_of, memo)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                name = sel.name.value
                if name not in memo:
                    memo[name] = self.root_fields(self.fragments[name].selection_set, kind_of, memo)
                counts += memo[name]
        return counts


def select_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == operation_name), None)


def analyse(schema: GraphQLSchema, document: DocumentNode, *, operation: OperationDefinitionNode,
            variables: Mapping[str, Any] | None, limits: Limits, search_fields: frozenset[str]) -> Analysis:
    """Measure the whole document and count the root fields of `operation`; raises LimitExceeded."""
    walker = _Walker(schema, document, variables or {}, limits)
    total = Figures()
    roots = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type,
             OperationType.SUBSCRIPTION: schema.subscription_type}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total.add(walker.selection_set(definition.selection_set, roots.get(definition.operation), False, False))
    reached = {name for name, _, _ in walker.memo}
    for name in walker.fragments.keys() - reached:  # unused fragments are validated too
        total.add(walker.fragment(name, False, False), times=0)
    checks = (("depth", total.depth, limits.max_depth, "QUERY_TOO_DEEP"),
              ("aliases", total.aliases, limits.max_aliases, "TOO_MANY_ALIASES"),
              ("cost", total.cost, limits.max_cost, "QUERY_TOO_COSTLY"),
              ("introspection_nesting", total.introspection, MAX_INTROSPECTION_NESTING, "QUERY_TOO_COMPLEX"))
    for name, value, maximum, code in checks:
        if value > maximum:
            raise LimitExceeded(code, f"Query {name.replace('_', ' ')} {value} exceeds the limit of {maximum}",
                                {"limit": name, "value": value, "max": maximum})

    def kind_of(field_name: str) -> str:
        if operation.operation == OperationType.MUTATION:
            return "write"
        return "search" if field_name in search_fields else "read"

    counts = walker.root_fields(operation.selection_set, kind_of, {})
    if (n := sum(counts.values())) > limits.max_root_fields:
        raise LimitExceeded("TOO_MANY_ROOT_FIELDS", f"The operation selects {n} root fields "
                            f"(at most {limits.max_root_fields})",
                            {"limit": "root_fields", "value": n, "max": limits.max_root_fields})
    return Analysis(operation=operation, figures=total, root_fields=counts)
