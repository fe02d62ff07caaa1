"""REST resources, declared once: the routes, the method dispatch and the checks every route shares.

A domain's `rest.py` declares its `Resource`: the base path, the lookup key of one item, the serializer of
its documents, and its operations — on the collection (list, create), on one item (get, replace, patch,
delete), named views of the collection (`…/statistics/`) and named actions on one item (`…/{key}/resolve/`).
Each operation (`Op`) says which method, the least role that may call it, its request body model, its
status, and, when not the method's, its rate class. From that one declaration `routes()` makes:

- both spellings of every path, with and without the trailing slash (no redirects);
- for every path, a 405 with `Allow` for any other method — a named view is never taken for an item's key,
  whatever the method;
- the role check first, before the body is read (a viewer's POST is a 403, not a 400 about its body), then
  the body validated against its model (400 with the fields), then the operation;
- DRF-style pages (`count/next/previous/results`) for a `Page`, the serializer for a stored document.

The same declarations are the source of the OpenAPI document (app/http/openapi.py): each operation's
query parameters (`query`, or its `listing` spec), its body model, its response model and the errors it may
answer are declared here, and what the route validates with is what the document says.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import permissions
from app.backends import Backends
from app.http import ratelimit
from app.http.auth import current_user
from app.http.responses import JSON, error_response, handler_for, read_body
from app.inputs import Param
from app.listing import ListSpec, Page, drf_response
from app.permissions import Rule
from app.users.models import Role, User

Serializer = Callable[[Backends, User, list[dict]], Awaitable[list[dict]]]  # (backends, the caller, documents)


@dataclass
class Call:
    """What an operation gets: the request, the backends, the signed-in user, the item's key (None on the
    collection) and the validated body (None when the operation takes none)."""

    request: Request
    bk: Backends
    user: User
    key: str | None
    body: Any
    serialize: Serializer
    query: tuple[Param, ...] = ()

    @functools.cached_property
    def params(self) -> dict[str, str]:
        """The query parameters, each its last value (as Starlette's `get` reads them), as a plain dict: a list
        reads a dozen of them, and a dict's `get` is C."""
        return dict(self.request.query_params)

    def arg(self, name: str) -> Any:
        """The declared query parameter `name`, validated (a 400 names it when it is not valid)."""
        param = next(p for p in self.query if p.name == name)
        return param.parse(self.params.get(name))

    async def one(self, doc: dict) -> dict[str, Any]:
        """A stored document as the resource's JSON."""
        return (await self.serialize(self.bk, self.user, [doc]))[0]

    async def page(self, page: Page) -> dict[str, Any]:
        """A page of stored documents as a DRF list envelope."""
        return drf_response(str(self.request.url), page, await self.serialize(self.bk, self.user, page.items))


@dataclass(frozen=True)
class Op:
    """One operation: `run(call)` returns a Response, a Page (served as a DRF page) or what goes in a JSON
    body with `status`.

    For the document (app/http/openapi.py): `response` is the model of the 2xx body (of each item of a
    page when `listing` is given: a list's filters, search, ordering and paging come from that spec);
    `query` the other query parameters; `errors` the statuses it may answer beyond those every operation
    may (400, 401, 429; 403 above the viewer's role; 404 on an item); `summary` its one line, else the
    first line of `run`'s docstring."""

    run: Callable[[Call], Awaitable[Any]]
    allow: Rule | Role = Role.VIEWER  # who may call it (app/permissions.py), checked before the body is read
    body: type[BaseModel] | None = None
    status: int = 200
    rate: str | None = None  # the rate-limit class when not the method's ("search")
    summary: str = ""
    response: Any = None
    listing: ListSpec | None = None
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    also: tuple[int, ...] = ()  # other 2xx statuses it answers with the same body (200: "already in progress")

    @property
    def rule(self) -> Rule:
        return permissions.rule(self.allow)

    def describe(self) -> tuple[str, str]:
        """(its one line, the rest): `summary`, else `run`'s docstring, else its name."""
        doc = inspect.getdoc(self.run) or ""
        first, _, rest = doc.partition("\n")
        return (self.summary or first.strip() or self.run.__name__.replace("_", " ").strip().capitalize()), rest.strip()


Methods = Mapping[str, Op]
# The methods the tests try on each path; a route takes any method (TRACE, made-up ones) and answers 405 itself.
EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


@dataclass(frozen=True)
class Resource:
    base: str            # "/api/v1/incidents" (no trailing slash)
    serialize: Serializer
    tag: str = ""        # its section of the document (default: the last part of `base`)
    description: str = ""
    key: str = "id"      # the path parameter naming one item
    collection: Methods = field(default_factory=dict)
    item: Methods = field(default_factory=dict)
    views: Mapping[str, Methods] = field(default_factory=dict)    # /base/<view>/
    actions: Mapping[str, Methods] = field(default_factory=dict)  # /base/{key}/<action>/

    def paths(self) -> list[tuple[str, Methods, bool]]:
        """(path with its trailing slash, its methods, whether it names an item), in routing order: the
        collection, its views, then items and their actions."""
        item = f"{self.base}/{{{self.key}}}/"
        out = [(f"{self.base}/", self.collection, False)] if self.collection else []
        out += [(f"{self.base}/{name}/", methods, False) for name, methods in self.views.items()]
        out += [(item, self.item, True)] if self.item else []
        out += [(f"{item}{name}/", methods, True) for name, methods in self.actions.items()]
        return out

    def routes(self) -> list[Route]:
        routes = []
        for path, methods, on_item in self.paths():
            endpoint = _endpoint(self, methods, on_item)
            for spelling in (path, path.rstrip("/")):
                routes.append(Route(spelling, _AnyMethod(endpoint), methods=None))
                if any(op.rate == "search" for op in methods.values()):
                    ratelimit.SEARCH_PATHS.add(spelling)
        return routes


class _AnyMethod:
    """An endpoint as an ASGI app, so that its route takes every method (TRACE and made-up ones too: Starlette
    limits a function endpoint to GET) and the endpoint answers a 405 naming the path's own methods. What the
    endpoint raises is answered by the app's handlers (app/http/responses.py), as Starlette's own wrapper of an
    endpoint (`request_response`) answers it, without that wrapper's layers on every request (a send wrapper,
    the handlers looked up in the scope); anything without a handler goes on to the error boundary."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            if (handler := handler_for(exc)) is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def permission_entries(resources: list["Resource"]) -> list[permissions.Entry]:
    """Every REST operation's rule, for the permission matrix (HEAD goes with GET)."""
    return [permissions.Entry("rest", method, path, op.rule, op.describe()[0])
            for resource in resources for path, methods, _ in resource.paths() for method, op in methods.items()]


def allowed(methods: Methods) -> list[str]:
    """The methods a path answers (HEAD with GET)."""
    return sorted({*methods, *(["HEAD"] if "GET" in methods else [])})


def _endpoint(resource: Resource, methods: Methods, on_item: bool):
    allow = allowed(methods)

    async def endpoint(request: Request) -> Response:
        op = methods.get("GET" if request.method == "HEAD" else request.method)
        if op is None:
            refused = error_response(405, f'Method "{request.method}" not allowed.', {"allowed": allow},
                                     "METHOD_NOT_ALLOWED")
            refused.headers["Allow"] = ", ".join(allow)
            return refused
        user = permissions.check(current_user(request), op.allow)
        body = await read_body(request, op.body) if op.body is not None else None
        call = Call(request=request, bk=request.app.state.backends, user=user,
                    key=request.path_params.get(resource.key) if on_item else None, body=body,
                    serialize=resource.serialize, query=op.query)
        result = await op.run(call)
        if isinstance(result, Response):
            return result
        if isinstance(result, Page):
            result = await call.page(result)
        return JSON(result, status_code=op.status)

    return endpoint
