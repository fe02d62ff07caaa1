"""The GraphQL schema: each domain contributes a Query and a Mutation part, joined here."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.tools import merge_types

from app.settings import get_settings
from schema.errors import ErrorCodes
from schema.articles import ArticleMutation, ArticleQuery
from schema.incidents import IncidentMutation, IncidentQuery
from schema.ratelimit import RateLimit

QUERIES: list[type] = [IncidentQuery, ArticleQuery]
MUTATIONS: list[type] = [IncidentMutation, ArticleMutation]

Query = merge_types("Query", tuple(QUERIES))
Mutation = merge_types("Mutation", tuple(MUTATIONS))


def build_schema() -> strawberry.Schema:
    s = get_settings()
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=s.graphql_max_depth),
            lambda: MaxTokensLimiter(max_token_count=s.graphql_max_tokens),
            lambda: MaxAliasesLimiter(max_alias_count=s.graphql_max_aliases),
            ParserCache,
            ValidationCache,
            ErrorCodes,
            RateLimit,
        ],
    )


schema = build_schema()
