"""The /graphql endpoint: the transport in front of the Strawberry schema.

Order of work, cheapest first, each step refusing before the next costs anything:
1. a user (the auth middleware; only the static GraphiQL page is served without one);
2. the body, read up to `max_body_bytes`, JSON checked by app.jsonsafe, an object;
3. the document, parsed with a token limit (cached by text);
4. its limits — depth, aliases, cost, repeats, root fields — measured without expanding
   fragments (schema/limits.py; a document within them remembered by text and variables);
5. the rate limit, one unit per root field of the operation by class (read, write, search);
6. validation (cached by text), then execution by Strawberry;
7. the response, refused (RESPONSE_TOO_LARGE) when its JSON would pass `graphql_max_response_bytes`.
Request-level failures answer 4xx in the GraphQL error shape; a mutation over GET is a 405, and a
subscription over HTTP a 400 (SUBSCRIPTION_NEEDS_WEBSOCKET: subscriptions run over WebSocket).

Steps 3-6 (all but execution) are `check_operation()`, which the WebSocket transport (schema/ws.py)
calls too: one set of checks for both transports. It returns a `Checked` operation ready to execute,
or raises `Refused`, carrying the GraphQL errors and the HTTP status each transport answers with.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType, parse, validate
from starlette.requests import Request
from starlette.responses import Response

from app.backends import Backends
from app.errors import ServiceError
from app.http import graphiql, ratelimit
from app.http.auth import is_ide_page
from app.http.responses import JSON, dumps, graphql_error, graphql_error_entry, read_json
from app.jsonsafe import JSONRejected, loads
from app.settings import Settings
from app.users.models import User
from schema.context import Context
from schema.limits import Analysis, LimitExceeded, Limits, analyse, select_operation
from schema.schema import SEARCH_FIELDS, schema


log = logging.getLogger(__name__)


class GraphQLRequestError(ServiceError):
    pass


CACHED_QUERY_CHARS = 16_384  # longer texts are parsed each time, so the cache cannot hold megabytes


def _parse_uncached(query: str, max_tokens: int) -> DocumentNode | GraphQLError:
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLError as exc:
        return exc


def _validate_uncached(query: str, document: DocumentNode) -> list[GraphQLError]:
    return validate(schema._schema, document)


_parse_cached = functools.lru_cache(maxsize=256)(_parse_uncached)
_validate_cached = functools.lru_cache(maxsize=256)(_validate_uncached)


def _parse(query: str, max_tokens: int) -> DocumentNode | GraphQLError:
    return (_parse_cached if len(query) <= CACHED_QUERY_CHARS else _parse_uncached)(query, max_tokens)


def _validate(query: str, document: DocumentNode) -> list[GraphQLError]:
    """graphql-core's rules, cached by query text (the document of a cached text is the cached one)."""
    return (_validate_cached if len(query) <= CACHED_QUERY_CHARS else _validate_uncached)(query, document)


CACHED_VARIABLES_BYTES = 2_048  # an operation whose variables are longer is measured each time
CACHED_ANALYSES = 256
_analyses: OrderedDict[tuple, Analysis] = OrderedDict()  # (query, operation, variables, limits) -> its analysis


def _analyse(document: DocumentNode, operation: OperationDefinitionNode, query: str, operation_name: str | None,
             variables: dict[str, Any] | None, limits: Limits) -> Analysis:
    """`analyse()` of the operation, remembered for a text cached by `_parse` with the same variables (the
    figures are a function of the document, the variables and the limits): a client's repeated query is
    measured once per process. Only a document within the limits is remembered; a refused one is measured
    each time (raises LimitExceeded)."""
    key = None
    if len(query) <= CACHED_QUERY_CHARS:
        try:
            sent = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b""
        except (TypeError, orjson.JSONEncodeError):
            sent = None
        if sent is not None and len(sent) <= CACHED_VARIABLES_BYTES:
            key = (query, operation_name, sent, limits)
            if (known := _analyses.get(key)) is not None:
                _analyses.move_to_end(key)
                return known
    analysis = analyse(schema._schema, document, operation=operation, variables=variables, limits=limits,
                       search_fields=SEARCH_FIELDS)
    if key is not None:
        _analyses[key] = analysis
        if len(_analyses) > CACHED_ANALYSES:
            _analyses.popitem(last=False)
    return analysis


async def _request_data(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "HEAD"):  # a HEAD is a GET without the body: its own body is ignored
        params = request.query_params
        data: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
        if raw := params.get("variables"):
            try:
                data["variables"] = loads(raw, max_depth=request.app.state.backends.settings.max_json_depth)
            except JSONRejected as exc:
                raise GraphQLRequestError(f"Invalid variables: {exc.message}", code=exc.code) from None
        return data
    data = await read_json(request)
    if not isinstance(data, dict):
        raise GraphQLRequestError("The request body must be a JSON object with a 'query'", code="INVALID_BODY")
    return data


def _operation_input(data: dict[str, Any]) -> tuple[str, dict[str, Any] | None, str | None]:
    query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise GraphQLRequestError("No GraphQL query found in the request", code="MISSING_QUERY")
    if variables is not None and not isinstance(variables, dict):
        raise GraphQLRequestError("'variables' must be a JSON object", code="INVALID_VARIABLES")
    if name is not None and not isinstance(name, str):
        raise GraphQLRequestError("'operationName' must be a string", code="INVALID_OPERATION_NAME")
    return query, variables, name


def limits_from(settings: Settings) -> Limits:
    return Limits(max_depth=settings.graphql_max_depth, max_aliases=settings.graphql_max_aliases,
                  max_cost=settings.graphql_max_cost, max_root_fields=settings.graphql_max_root_fields,
                  max_list_size=settings.max_page_size, max_timeline_events=settings.max_events_per_incident)


def render(body: dict[str, Any]) -> bytes:
    """A JSON body exactly as app.http.responses.JSON writes it."""
    return dumps(body)


def result_json(result: Any, settings: Settings, operation_type: OperationType) -> tuple[dict[str, Any], bytes]:
    """The GraphQL response of an executed operation, as an object and as the JSON bytes sent — or,
    when those would be more than `graphql_max_response_bytes`, `data: null` and one RESPONSE_TOO_LARGE
    error (never a truncated body). The cost limit keeps such responses rare; this is the backstop for
    what it cannot see (long texts, JSON fields)."""
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [err.formatted for err in result.errors]
    content = render(body)
    maximum = settings.graphql_max_response_bytes
    if maximum and len(content) > maximum:
        ran = " (the mutation has run)" if operation_type == OperationType.MUTATION else ""
        log.warning("graphql response too large", extra={"bytes": len(content), "max": maximum})
        body = {"data": None, "errors": [graphql_error_entry(
            f"The response would be {len(content)} bytes, more than the limit of {maximum}{ran}: ask for fewer "
            "fields, smaller pages or lower limits", "RESPONSE_TOO_LARGE",
            {"limit": "response_bytes", "value": len(content), "max": maximum})]}
        content = render(body)
    return body, content


WEBSOCKET = "WEBSOCKET"  # the `method` of an operation that arrived over WebSocket (schema/ws.py)
WEBSOCKET_PROTOCOL = "graphql-transport-ws"


class Refused(Exception):
    """An operation refused before execution: `errors` in the GraphQL shape; `status` (and `headers`)
    for HTTP, `code` the first error's code."""

    def __init__(self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None):
        super().__init__(errors[0]["message"] if errors else "refused")
        self.status, self.errors, self.headers = status, errors, headers

    @classmethod
    def one(cls, status: int, message: str, code: str, details: Any = None,
            headers: dict[str, str] | None = None) -> Refused:
        return cls(status, [graphql_error_entry(message, code, details)], headers)

    @property
    def code(self) -> str:
        return self.errors[0]["extensions"]["code"]


@dataclass
class Checked:
    """An operation that passed every check, ready for Strawberry (the document pre-parsed)."""
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    document: DocumentNode
    operation: OperationDefinitionNode
    verdicts: list[ratelimit.Verdict] = field(default_factory=list)

    @property
    def operation_type(self) -> OperationType:
        return self.operation.operation


async def check_operation(bk: Backends, user: User, data: dict[str, Any], *, method: str) -> Checked:
    """Everything before execution, cheapest first, for both transports: the operation's input, the
    parse (token limit, cached), the operation, the transport's rules for its type, the limits
    (schema/limits.py), the rate limit per root field by class, and validation (cached). `method` is
    the HTTP method, or WEBSOCKET. Raises Refused."""
    try:
        query, variables, operation_name = _operation_input(data)
    except ServiceError as exc:
        raise Refused.one(exc.status, exc.error, exc.code, exc.details) from None
    settings = bk.settings

    document = _parse(query, settings.graphql_max_tokens)
    if isinstance(document, GraphQLError):
        raise Refused.one(400, document.message, "GRAPHQL_PARSE_FAILED")
    operation = select_operation(document, operation_name)
    if operation is None:
        message = f"Unknown operation named '{operation_name}'." if operation_name else \
            "Must provide operation name if query contains multiple operations."
        raise Refused.one(400, message, "GRAPHQL_VALIDATION_FAILED")
    if operation.operation == OperationType.SUBSCRIPTION and method != WEBSOCKET:
        raise Refused.one(400, "Subscriptions are served over WebSocket only: connect to /graphql with the "
                               f"'{WEBSOCKET_PROTOCOL}' protocol", "SUBSCRIPTION_NEEDS_WEBSOCKET",
                          {"protocol": WEBSOCKET_PROTOCOL})
    if method in ("GET", "HEAD") and operation.operation != OperationType.QUERY:
        raise Refused.one(405, "Only queries may be sent with GET; use POST", "METHOD_NOT_ALLOWED",
                          headers={"Allow": "POST"})
    try:
        analysis = _analyse(document, operation, query, operation_name, variables, limits_from(settings))
    except LimitExceeded as exc:
        raise Refused.one(400, exc.message, exc.code, exc.details) from None

    verdicts = []
    units = analysis.root_fields or {"read": 1}  # every document costs at least one unit
    try:
        for kind, amount in sorted(units.items()):
            if (verdict := await ratelimit.check(bk, user_id=user.id, kind=kind, amount=amount)) is not None:
                verdicts.append(verdict)
    except ratelimit.RateLimited as exc:
        raise Refused.one(429, exc.error, exc.code, exc.details, headers=ratelimit.limited_headers(exc)) from None

    if errors := _validate(query, document):
        raise Refused(400, [{**err.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for err in errors])
    return Checked(query=query, variables=variables, operation_name=operation_name, document=document,
                   operation=operation, verdicts=verdicts)


async def graphql_endpoint(request: Request) -> Response:
    bk = request.app.state.backends
    settings = bk.settings
    if is_ide_page(request.scope):
        return await graphiql.page(request) if settings.development else \
            graphql_error(404, "Not found", "NOT_FOUND")
    user = request.scope.get("user")
    if user is None:  # the middleware answers first; never execute without a user
        return graphql_error(401, "Authentication credentials were not provided.", "NOT_AUTHENTICATED")
    try:
        data = await _request_data(request)
    except ServiceError as exc:
        return graphql_error(exc.status, exc.error, exc.code, exc.details)
    try:
        checked = await check_operation(bk, user, data, method=request.method)
    except Refused as exc:
        return JSON({"errors": exc.errors}, status_code=exc.status, headers=exc.headers)

    context = Context(request=request, response=None, backends=bk, user=user, document=checked.document)
    result = await schema.execute(checked.query, variable_values=checked.variables, context_value=context,
                                  operation_name=checked.operation_name)
    _, content = result_json(result, settings, checked.operation_type)
    verdicts = checked.verdicts
    headers = ratelimit.headers(min(verdicts, key=lambda v: v.remaining)) if verdicts else None
    return Response(content, media_type="application/json", headers=headers)
