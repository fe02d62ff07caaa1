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
  input object (its default, or the variable's declared default, when not given; the largest list
  size when it is not plainly a positive integer), `LIST_FACTOR` for another list, 1 for a single
  object. A size argument on a field that returns one object (a page, an envelope) sizes that
  object's lists (`results`, `events`), not its other fields;
- repeats: how often one response key occurs in one selection set, fields brought by named fragments
  included (graphql-core compares those fields pairwise, so a thousand copies cost it a second);
- introspection nesting: `fields`, `inputFields`, `interfaces`, `possibleTypes` lists nested in
  one another (at most 3, as graphql-js's MaxIntrospectionDepthRule).

Unknown fragments, unused fragments and fragment cycles are refused here too (cheaply: validation
would otherwise still run its other rules over them). At most one `__schema` and ten `__type` per
document: each answers with (part of) the whole schema.

For the operation that runs, `root_fields` counts its root fields by rate class (every alias, and
every copy a fragment brings): a mutation field is a write, a search field a search, any other
field a read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from graphql import (DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLSchema,
                     InlineFragmentNode, IntValueNode, ObjectValueNode, OperationDefinitionNode, OperationType,
                     SelectionSetNode, VariableNode, get_named_type, get_nullable_type, is_list_type,
                     value_from_ast_untyped)
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
    max_list_size: int = 100  # the size assumed for a list whose size argument cannot be read
    max_schema_fields: int = 1  # `__schema` per document
    max_type_fields: int = 10   # `__type` per document


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
        self.memo: dict[tuple[str, int, bool], Figures] = {}
        self.visiting: set[str] = set()
        self.key_memo: dict[str, Counter] = {}
        self.visiting_keys: set[str] = set()

    def fragment(self, name: str, page: int, introspecting: bool) -> Figures:
        key = (name, page, introspecting)
        if key in self.memo:
            return self.memo[key]
        definition = self.fragments.get(name)
        if definition is None:  # refused here: validation would still run over everything else
            raise LimitExceeded("GRAPHQL_VALIDATION_FAILED", f"Unknown fragment '{name}'.", {"fragment": name})
        if name in self.visiting:
            raise LimitExceeded("GRAPHQL_VALIDATION_FAILED", f"Cannot spread fragment '{name}' within itself.",
                                {"fragment": name})
        self.visiting.add(name)
        parent = self.schema.get_type(definition.type_condition.name.value)
        figures = self.selection_set(definition.selection_set, parent, page, introspecting)
        self.visiting.discard(name)
        self.memo[key] = figures
        return figures

    def selection_set(self, selection_set: SelectionSetNode | None, parent: Any, page: int,
                      introspecting: bool) -> Figures:
        out = Figures()
        if selection_set is None:
            return out
        keys = self.response_keys(selection_set)
        for sel, sel_parent in self._flatten(selection_set, parent):
            if isinstance(sel, FragmentSpreadNode):
                out.add(self.fragment(sel.name.value, page, introspecting))
                continue
            out.add(self.field(sel, sel_parent, page, introspecting))
        if keys and (worst := max(keys.values())) > self.limits.max_repeats:
            raise LimitExceeded("QUERY_TOO_COMPLEX", f"A field is selected {worst} times in one selection set "
                                f"(at most {self.limits.max_repeats})",
                                {"limit": "repeats", "value": worst, "max": self.limits.max_repeats})
        return out

    def response_keys(self, selection_set: SelectionSetNode) -> Counter:
        """How often each response key occurs in this selection set once the fragments spread in it
        are merged in (graphql-core compares all of them pairwise); memoised per fragment."""
        keys: Counter = Counter()
        for sel, _ in self._flatten(selection_set, None):
            if isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name not in self.fragments:
                    raise LimitExceeded("GRAPHQL_VALIDATION_FAILED", f"Unknown fragment '{name}'.",
                                        {"fragment": name})
                if name not in self.key_memo:
                    if name in self.visiting_keys:
                        raise LimitExceeded("GRAPHQL_VALIDATION_FAILED",
                                            f"Cannot spread fragment '{name}' within itself.", {"fragment": name})
                    self.visiting_keys.add(name)
                    self.key_memo[name] = self.response_keys(self.fragments[name].selection_set)
                    self.visiting_keys.discard(name)
                keys.update(self.key_memo[name])
            else:
                keys[(sel.alias or sel.name).value] += 1
        return keys

    def _flatten(self, selection_set: SelectionSetNode, parent: Any) -> Iterable[tuple[Any, Any]]:
        """Fields and named spreads of a selection set with their parent type, inline fragments
        opened (graphql-core compares the fields they bring with the others, too)."""
        for sel in selection_set.selections:
            if isinstance(sel, InlineFragmentNode):
                narrowed = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                yield from self._flatten(sel.selection_set, narrowed)
            else:
                yield sel, parent

    def field(self, node: FieldNode, parent: Any, page: int, introspecting: bool) -> Figures:
        name = node.name.value
        definition = self._definition(parent, name)
        own = Figures(aliases=1 if node.alias else 0, cost=1)
        if node.selection_set is None:
            return own
        if definition is None:  # an unknown field (validation reports it): measured all the same
            own.add(self.selection_set(node.selection_set, None, 0, introspecting), deeper=1)
            return own
        child_type = get_named_type(definition.type)
        inside = introspecting or name in ("__schema", "__type")
        size = self._size(node, definition)
        is_list = is_list_type(get_nullable_type(definition.type))
        if size is not None and not is_list:  # a page object: its list (`results`, `events`) has `size` items
            times, child_page = 1, size
        elif size is not None:
            times, child_page = size, 0
        elif is_list:
            times, child_page = (1 if inside else (page or LIST_FACTOR)), 0
        else:
            times, child_page = 1, 0
        sub = self.selection_set(node.selection_set, child_type, child_page, inside)
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
        """The size asked for; anything that is not plainly a positive integer (a float GraphQL would
        coerce, a 0 a resolver might replace by its default, a value from nowhere) is taken as the
        largest size a list may have, so the estimate never falls below the truth."""
        if isinstance(value, IntValueNode):
            value = int(value.value)
        elif isinstance(value, VariableNode):
            value = self.variables.get(value.name.value, default)
        elif value is None:
            value = default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return self.limits.max_list_size

    def root_fields(self, selection_set: SelectionSetNode, memo: dict[str, Counter]) -> Counter:
        """Root fields by name, every copy counted (fragments have no cycles: measured first)."""
        counts: Counter = Counter()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                counts[sel.name.value] += 1
            elif isinstance(sel, InlineFragmentNode):
                counts += self.root_fields(sel.selection_set, memo)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                name = sel.name.value
                if name not in memo:
                    memo[name] = self.root_fields(self.fragments[name].selection_set, memo)
                counts += memo[name]
        return counts


def select_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == operation_name), None)


def _with_defaults(document: DocumentNode, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    """The variables sent, over the defaults the operations declare (`query($n: Int = 100)`)."""
    out: dict[str, Any] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for var in definition.variable_definitions or ():
                if var.default_value is not None:
                    out.setdefault(var.variable.name.value, value_from_ast_untyped(var.default_value))
    out.update(variables or {})
    return out


def analyse(schema: GraphQLSchema, document: DocumentNode, *, operation: OperationDefinitionNode,
            variables: Mapping[str, Any] | None, limits: Limits, search_fields: frozenset[str]) -> Analysis:
    """Measure the whole document and count the root fields of `operation`; raises LimitExceeded."""
    walker = _Walker(schema, document, _with_defaults(document, variables), limits)
    total = Figures()
    roots = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type,
             OperationType.SUBSCRIPTION: schema.subscription_type}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total.add(walker.selection_set(definition.selection_set, roots.get(definition.operation), 0, False))
    reached = {name for name, _, _ in walker.memo}
    if unused := sorted(walker.fragments.keys() - reached):  # validation would measure them all the same
        raise LimitExceeded("GRAPHQL_VALIDATION_FAILED", f"Fragment '{unused[0]}' is never used.",
                            {"fragment": unused[0]})
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

    names = walker.root_fields(operation.selection_set, {})
    if (n := sum(names.values())) > limits.max_root_fields:
        raise LimitExceeded("TOO_MANY_ROOT_FIELDS", f"The operation selects {n} root fields "
                            f"(at most {limits.max_root_fields})",
                            {"limit": "root_fields", "value": n, "max": limits.max_root_fields})
    for meta, maximum in (("__schema", limits.max_schema_fields), ("__type", limits.max_type_fields)):
        if names[meta] > maximum:  # each answers with (part of) the whole schema, whatever it costs here
            raise LimitExceeded("QUERY_TOO_COMPLEX", f"At most {maximum} {meta} per document",
                                {"limit": meta, "value": names[meta], "max": maximum})
    counts: Counter = Counter()
    for name, k in names.items():
        counts[kind_of(name)] += k
    return Analysis(operation=operation, figures=total, root_fields=counts)
