"""The Strawberry ASGI app mounted at /graphql."""

from __future__ import annotations

from strawberry.asgi import GraphQL

from schema.context import Context
from schema.schema import schema


class GraphQLApp(GraphQL):
    async def get_context(self, request, response) -> Context:
        return Context(request=request, response=response, backends=request.app.state.backends,
                       user=request.scope.get("user"))


def graphql_app(*, ide: bool) -> GraphQLApp:
    return GraphQLApp(schema, graphql_ide="graphiql" if ide else None)
