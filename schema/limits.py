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
  input object (its default, or the variable's declared default, when not given; the field's maximum
  when it is not plainly a positive integer), never more than the field's maximum (`LIST_MAXIMUMS`:
  the most its resolver can ever return), the maximum alone for a list without a size argument, 1
  for a single object. A size argument on a field that returns one object (a page, an envelope)
  sizes that object's lists (`results`, `events`), not its other fields. A field that aggregates
  whole collections (the statistics) costs `COLLECTION_SCAN` more per collection it scans
  (`SCAN_COSTS`), so its aliases cannot multiply full scans;
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

# The most objects each list field can return: what its resolver (or the model it reads, or a setting:
# a name is a `Limits` attribute) caps it at. A list stated smaller in the document (its size argument,
# or the size argument of the page object above it) costs that; never more than this. Every list of
# objects in the schema has an entry here, a size argument, or is a page's `results`
# (tests/test_graphql_cost.py checks it); one without any is taken as `UNLISTED_LIST`.
SOURCES_MAX = 1000          # app/patterns/models.py: source_incidents / source_postmortems (resolvers cut there)
RUN_PATTERNS_MAX = 200      # a mining run's `patterns` over GraphQL (the resolver cuts there; REST lists all)
LIST_MAXIMUMS: dict[tuple[str, str], int | str] = {
    ("Incident", "timeline"): "max_timeline_events",        # IKL_MAX_EVENTS_PER_INCIDENT
    ("IncidentTimeline", "events"): "max_timeline_events",
    ("Query", "incidentTimeline"): "max_timeline_events",    # a page object: sizes its `events`
    ("Query", "searchKnowledgeBase"): 100,                   # a page object: sizes its `results`
    ("Incident", "recommendations"): 50,                     # recommendations.service.MAX_PER_INCIDENT
    ("Query", "similarIncidents"): 50,                       # incidents.service.similar_incidents
    ("Query", "popularArticles"): 100,
    ("Query", "userTokens"): 1000,                           # app/users/accounts.py MAX_TOKENS
    ("Kpis", "perWeek"): 104,                                # app/kpis/service.py MAX_WEEKS
    ("Kpis", "risingPatterns"): 10,                          # app/kpis/service.py RISING_TOP
    ("IncidentPrediction", "likelyRootCauses"): 5,           # app/predictions/service.py TOP_CAUSES
    ("PredictionBasis", "incidents"): 15,                    # app/predictions/service.py K
    ("PredictionBasis", "patterns"): 10,                     # app/predictions/service.py TOP_PATTERNS
    ("KnowledgeSearchResult", "results"): 100,               # app/articles/models.py SearchInput.limit
    ("KnowledgeBaseStatistics", "mostViewed"): 5,            # app/articles/stats.py TOP
    ("KnowledgeBaseStatistics", "bestRated"): 5,
    ("KnowledgeBaseUsage", "topSearchTerms"): 10,            # app/articles/stats.py TOP_TERMS
    ("KnowledgeBaseUsage", "topZeroResultTerms"): 10,
    ("LearningPattern", "sourceIncidents"): SOURCES_MAX,
    ("LearningPattern", "sourcePostmortems"): SOURCES_MAX,
    ("LearningPattern", "history"): 100,                     # app/patterns/service.py HISTORY_MAX
    ("PatternMiningRun", "patterns"): RUN_PATTERNS_MAX,
    ("Postmortem", "actionItems"): 500,                      # app/postmortems/models.py ITEMS_MAX
    ("KnowledgeArticle", "runbookLinks"): 20,                # app/articles/models.py RUNBOOK_LINKS_MAX
    ("WebhookDelivery", "attempts"): 50,                     # app/webhooks/delivery.py ATTEMPTS_KEPT
    ("Postmortem", "reviewers"): 50,                         # app/postmortems/models.py PostmortemContent.reviewers
    ("Recommendation", "matchingFactors"): 10,               # the engine writes at most 9
    ("SimilarIncident", "matchingFactors"): 10,              # incidents.similarity: at most 7
    ("GeneratedRecommendations", "recommendations"): 50,     # app/recommendations/models.py GenerateRequest
    ("GeneratedRecommendations", "bestWithheld"): 3,         # app/recommendations/service.py WITHHELD_SHOWN
}
PAGE_RESULTS = "max_list_size"  # `results` of every `…Paginated` type: the largest page
UNLISTED_LIST = 1000

# Fields that aggregate whole collections whatever they return: each costs COLLECTION_SCAN per
# collection it scans, on top of its selection (a field returning a `…Statistics` type and missing here
# costs UNLISTED_SCAN). With the default budget (10,000) a document holds at most four of the largest.
COLLECTION_SCAN = 1000
SCAN_COSTS: dict[tuple[str, str], int] = {
    ("Query", "knowledgeBaseStatistics"): 2 * COLLECTION_SCAN,    # the visible articles, the usage events
    ("Query", "learningPatternStatistics"): 2 * COLLECTION_SCAN,  # the patterns, their source incidents
    ("Query", "postmortemStatistics"): COLLECTION_SCAN,
    ("Query", "recommendationStatistics"): COLLECTION_SCAN,
    # incidents, postmortems, recommendations, usage events, learning patterns (app/kpis/service.py)
    ("Query", "kpis"): 5 * COLLECTION_SCAN,
    # a similarity search over the resolved incidents (app/predictions): a page of incidents pays it per item
    ("Incident", "predictions"): COLLECTION_SCAN,
}
UNLISTED_SCAN = 2 * COLLECTION_SCAN
INTROSPECTION_LISTS = {"fields", "inputFields", "interfaces", "possibleTypes"}
MAX_INTROSPECTION_NESTING = 3


@dataclass(frozen=True)
class Limits:
    max_depth: int = 10
    max_aliases: int = 30
    max_cost: int = 5000
    max_root_fields: int = 30
    max_repeats: int = 10
    max_list_size: int = 100  # the largest page (IKL_MAX_PAGE_SIZE)
    max_timeline_events: int = 5000  # IKL_MAX_EVENTS_PER_INCIDENT
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
        parent_name = getattr(parent, "name", None)
        own.cost += self._scan_cost(parent_name, name, child_type)
        inside = introspecting or name in ("__schema", "__type")
        maximum = None if inside else self._maximum(parent_name, name)
        size = self._size(node, definition, maximum)
        is_list = is_list_type(get_nullable_type(definition.type))
        if size is not None and not is_list:  # a page object: its list (`results`, `events`) has `size` items
            times, child_page = 1, size
        elif size is not None:
            times, child_page = size, 0
        elif is_list and inside:
            times, child_page = 1, 0
        elif is_list:  # as many as the page above states, never more than the field's maximum
            bounds = [b for b in (page, maximum) if b]
            times, child_page = (min(bounds) if bounds else UNLISTED_LIST), 0
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

    def _maximum(self, type_name: str | None, field_name: str) -> int | None:
        """The most objects this field can return (LIST_MAXIMUMS), None when not declared."""
        bound = LIST_MAXIMUMS.get((type_name, field_name))
        if bound is None and field_name == "results" and (type_name or "").endswith("Paginated"):
            bound = PAGE_RESULTS
        return getattr(self.limits, bound) if isinstance(bound, str) else bound

    @staticmethod
    def _scan_cost(type_name: str | None, field_name: str, child_type: Any) -> int:
        cost = SCAN_COSTS.get((type_name, field_name))
        if cost is None and getattr(child_type, "name", "").endswith("Statistics"):
            cost = UNLISTED_SCAN
        return cost or 0

    def _size(self, node: FieldNode, definition: Any, maximum: int | None = None) -> int | None:
        """How many objects the field returns at most, from its size argument — a direct one
        (`pageSize: 50`) or a field of an input object (`input: {limit: 50}`); its default when not
        given; never more than `maximum`; None when the field has no size argument."""
        size = self._stated_size(node, definition, maximum or self.limits.max_list_size)
        return min(size, maximum) if size is not None and maximum else size

    def _stated_size(self, node: FieldNode, definition: Any, unreadable: int) -> int | None:
        given = {arg.name.value: arg.value for arg in node.arguments or ()}
        for arg_name, arg in definition.args.items():
            if arg_name in SIZE_ARGUMENTS:
                return self._positive(given.get(arg_name), arg.default_value, unreadable)
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
                return self._positive(obj.get(inner) if isinstance(obj, dict) else None, default, unreadable)
            if isinstance(value, ObjectValueNode):
                node_value = next((f.value for f in value.fields if f.name.value == inner), None)
                return self._positive(node_value, default, unreadable)
            return self._positive(None, default, unreadable)
        return None

    def _positive(self, value: Any, default: Any, unreadable: int) -> int:
        """The size asked for; anything that is not plainly a positive integer (a float GraphQL would
        coerce, a 0 a resolver might replace by its default, a value from nowhere) is taken as
        `unreadable` — the field's maximum, or the largest page — so the estimate never falls below
        the truth."""
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
        return unreadable

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
