"""The GraphQL schema: each domain contributes a Query and a Mutation part, joined here."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types

from schema.common import UtcDateTime
from schema.errors import ErrorCodes
from schema.articles import ArticleMutation, ArticleQuery
from schema.audit import AuditQuery
from schema.incidents import IncidentMutation, IncidentQuery
from schema.postmortems import PostmortemMutation, PostmortemQuery, PostmortemSubscription
from schema.patterns import PatternMiningMutation, PatternMiningQuery, PatternMutation, PatternQuery
from schema.recommendations import RecommendationMutation, RecommendationQuery

# Root fields that are searches for the rate limit (every other query field is a read).
SEARCH_FIELDS = frozenset({"searchKnowledgeBase"})
QUERIES: list[type] = [IncidentQuery, ArticleQuery, PostmortemQuery, RecommendationQuery, PatternQuery,
                        PatternMiningQuery, AuditQuery]
MUTATIONS: list[type] = [IncidentMutation, ArticleMutation, PostmortemMutation, RecommendationMutation,
                         PatternMutation, PatternMiningMutation]
SUBSCRIPTIONS: list[type] = [PostmortemSubscription]

Query = merge_types("Query", tuple(QUERIES))
Mutation = merge_types("Mutation", tuple(MUTATIONS))
Subscription = merge_types("Subscription", tuple(SUBSCRIPTIONS))


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
    """Parsing, limits and rate limits happen in the endpoint, before Strawberry sees the document."""
    return Schema(query=Query, mutation=Mutation, subscription=Subscription, extensions=[PreParsed, ErrorCodes],
                  scalar_overrides={datetime: UtcDateTime})


schema = build_schema()
