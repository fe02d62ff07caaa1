"""The GraphQL schema: each domain contributes a Query and a Mutation part, joined here."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types

from app.permissions import Entry
from schema import permissions
from schema.common import UtcDateTime
from schema.errors import ErrorCodes
from schema.execution import LeafFastPath
from schema.articles import ArticleMutation, ArticleQuery
from schema.audit import AuditQuery
from schema.incidents import IncidentMutation, IncidentQuery
from schema.kpis import KpiQuery
from schema.postmortems import PostmortemMutation, PostmortemQuery, PostmortemSubscription
from schema.patterns import PatternMiningMutation, PatternMiningQuery, PatternMutation, PatternQuery
from schema.recommendations import RecommendationMutation, RecommendationQuery
from schema.users import UserMutation, UserQuery
from schema.webhooks import WebhookMutation, WebhookQuery

# Root fields rate-limited as searches (every other query field is a read): the search, and the KPIs (expensive).
SEARCH_FIELDS = frozenset({"searchKnowledgeBase", "kpis"})
QUERIES: list[type] = [IncidentQuery, ArticleQuery, PostmortemQuery, RecommendationQuery, PatternQuery,
                        PatternMiningQuery, KpiQuery, AuditQuery, UserQuery, WebhookQuery]
MUTATIONS: list[type] = [IncidentMutation, ArticleMutation, PostmortemMutation, RecommendationMutation,
                         PatternMutation, PatternMiningMutation, UserMutation, WebhookMutation]
SUBSCRIPTIONS: list[type] = [PostmortemSubscription]

Query = merge_types("Query", tuple(QUERIES))
Mutation = merge_types("Mutation", tuple(MUTATIONS))
Subscription = merge_types("Subscription", tuple(SUBSCRIPTIONS))
ROOTS = {"query": Query, "mutation": Mutation, "subscription": Subscription}


class PreParsed(SchemaExtension):
    """Hands Strawberry the document the endpoint (schema/app.py) parsed, measured against the
    limits and validated: no second parse or validation, and nothing runs that was not measured."""

    def on_parse(self):
        self.execution_context.graphql_document = self.execution_context.context.document
        yield

    def on_validate(self):
        self.execution_context.pre_execution_errors = []
        yield


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Not logged here: ErrorCodes logs the unexpected ones with the request id; the rest (bad
        input, not found, a backend outage already logged as such) are answers, not faults."""


def build_schema() -> strawberry.Schema:
    """Parsing, limits and rate limits happen in the endpoint, before Strawberry sees the document; every root
    field's declared permission is checked by its guard (schema/permissions.py) before its resolver runs."""
    permissions.guard_root_fields(ROOTS)
    return Schema(query=Query, mutation=Mutation, subscription=Subscription, extensions=[PreParsed, ErrorCodes],
                  scalar_overrides={datetime: UtcDateTime}, execution_context_class=LeafFastPath)


schema = build_schema()


def permission_entries() -> list[Entry]:
    """Every GraphQL root field's rule, for the permission matrix."""
    return permissions.entries(ROOTS, schema.config.name_converter.from_field)
