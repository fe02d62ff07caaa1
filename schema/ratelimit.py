"""Rate limits for GraphQL: a mutation counts as a write, a query as a read, and a query that
selects a search field as a search (the same counters as REST)."""

from __future__ import annotations

from graphql import GraphQLError, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from app.http import ratelimit

SEARCH_FIELDS = {"searchKnowledgeBase"}


class RateLimit(SchemaExtension):
    async def on_execute(self):
        ctx = self.execution_context
        kind = "read"
        if ctx.operation_type == OperationType.MUTATION:
            kind = "write"
        elif ctx.graphql_document is not None:
            for definition in ctx.graphql_document.definitions:
                if isinstance(definition, OperationDefinitionNode) and any(
                        getattr(sel, "name", None) and sel.name.value in SEARCH_FIELDS
                        for sel in definition.selection_set.selections):
                    kind = "search"
        context = ctx.context
        try:
            await ratelimit.check(context.backends, user_id=context.user.id, kind=kind)
        except ratelimit.RateLimited as exc:  # raised before execution, so no resolver error path
            raise GraphQLError(exc.error, extensions={"code": exc.code, "details": exc.details}) from None
        yield
