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

These declarations are meant to be the one source of the OpenAPI document and of the permission matrix
(not generated yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.backends import Backends
from app.http import ratelimit
from app.http.auth import current_user
from app.http.responses import JSON, error_response, read_body
from app.listing import Page, drf_response
from app.users.models import Role, User, require_role

Serializer = Callable[[Request, list[dict]], Awaitable[list[dict]]]


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

    @property
    def params(self) -> QueryParams:
        return self.request.query_params

    async def one(self, doc: dict) -> dict[str, Any]:
        """A stored document as the resource's JSON."""
        return (await self.serialize(self.request, [doc]))[0]

    async def page(self, page: Page) -> dict[str, Any]:
        """A page of stored documents as a DRF list envelope."""
        return drf_response(str(self.request.url), page, await self.serialize(self.request, page.items))


@dataclass(frozen=True)
class Op:
    """One operation: `run(call)` returns a Response, a Page (served as a DRF page) or what goes in a JSON
    body with `status`."""

    run: Callable[[Call], Awaitable[Any]]
    role: Role = Role.VIEWER
    body: type[BaseModel] | None = None
    status: int = 200
    rate: str | None = None  # the rate-limit class when not the method's ("search")
    summary: str = ""


Methods = Mapping[str, Op]
EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # each path answers them all (405 itself)


@dataclass(frozen=True)
class Resource:
    base: str            # "/api/v1/incidents" (no trailing slash)
    serialize: Serializer
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
                routes.append(Route(spelling, endpoint, methods=EVERY_METHOD))
                if any(op.rate == "search" for op in methods.values()):
                    ratelimit.SEARCH_PATHS.add(spelling)
        return routes


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
        user = require_role(current_user(request), op.role)
        body = await read_body(request, op.body) if op.body is not None else None
        call = Call(request=request, bk=request.app.state.backends, user=user,
                    key=request.path_params.get(resource.key) if on_item else None, body=body,
                    serialize=resource.serialize)
        result = await op.run(call)
        if isinstance(result, Response):
            return result
        if isinstance(result, Page):
            result = await call.page(result)
        return JSON(result, status_code=op.status)

    return endpoint
