"""Token authentication for every API route (REST and GraphQL), then the per-user rate limit
for REST; health routes are open."""

from __future__ import annotations

from urllib.parse import parse_qs

from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import NotAuthenticated, ServiceError, Unavailable, backend_unavailable
from app.http import ratelimit
from app.http.responses import error_for
from app.users import service as users
from app.users.models import User

PROTECTED_PREFIXES = ("/api/", "/graphql")


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the prefix it is served under (`uvicorn --root-path /ikl` puts
    that prefix in `path` too), so that /ikl/api/… is protected like /api/…."""
    root, path = scope.get("root_path", ""), scope["path"]
    return path[len(root):] if root and path.startswith(root + "/") else path


def is_ide_page(scope: Scope) -> bool:
    """GET /graphql from a browser with no operation in it: the static GraphiQL page."""
    if scope["method"] != "GET" or route_path(scope) != "/graphql":
        return False
    params = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return not params.keys() & {"query", "mutation", "operationName", "variables", "extensions"} \
        and b"text/html" in dict(scope["headers"]).get(b"accept", b"")


class TokenAuthMiddleware:
    """Puts the caller in scope["user"], or answers 401 before the route runs. Only the static
    GraphiQL page (in development) is served without a user; every operation, by any method, needs one.
    Failed attempts are limited per client address (429 before any lookup once past the limit)."""

    def __init__(self, app: ASGIApp, *, allow_ide: bool = False) -> None:
        self.app = app
        self.allow_ide = allow_ide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or not path.startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.allow_ide and is_ide_page(scope):
            await self.app(scope, receive, send)
            return
        bk = scope["app"].state.backends
        try:
            user, error = await authenticate(scope, bk)
        except ServiceError as exc:
            headers = ratelimit.limited_headers(exc) if isinstance(exc, ratelimit.RateLimited) else None
            await error_for(path, exc, headers)(scope, receive, send)
            return
        if user is None:
            await error_for(path, NotAuthenticated(error), {"WWW-Authenticate": "Token"})(scope, receive, send)
            return
        scope["user"] = user
        credential = users.request_credential.set(token_key(scope))  # re-checked by long-lived streams
        try:
            await self._authenticated(scope, receive, send, bk, user)
        finally:
            users.request_credential.reset(credential)

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send, bk, user: User) -> None:
        path = route_path(scope)
        if path.startswith("/graphql"):  # limited per root field by the GraphQL endpoint
            await self.app(scope, receive, send)
            return
        try:
            kind = ratelimit.classify(scope["method"], path)
            verdict = await ratelimit.check(bk, user_id=user.id, kind=kind)
        except ratelimit.RateLimited as exc:
            await error_for(path, exc, ratelimit.limited_headers(exc))(scope, receive, send)
            return
        if verdict is None:
            await self.app(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in ratelimit.headers(verdict).items()]

        async def send_with_limits(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)


def token_key(scope: Scope) -> str | None:
    """The key of the scope's `Authorization: Token <key>` header, or None when there is no such header."""
    auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, key = auth.partition(" ")
    return key.strip() if scheme.lower() == "token" and key.strip() else None


async def authenticate(scope: Scope, bk, *, fresh: bool = False) -> tuple[User | None, str]:
    """The user the scope's `Authorization: Token <key>` header names (or None and why), for every
    transport (HTTP here, WebSocket in schema/ws.py): cached users, the failed-attempt limit per address.
    `fresh`: never the token cache (a WebSocket, which may run writes for hours, asks the database)."""
    if not dict(scope["headers"]).get(b"authorization", b"").strip():
        return None, "Authentication credentials were not provided."
    key = token_key(scope)
    if key is None:
        return None, "Invalid token header. Use 'Authorization: Token <key>'."
    cached = None if fresh else users.cached_user(key=key)
    if cached is not None:
        return cached, ""
    address = ratelimit.client_key((scope.get("client") or ("unknown", 0))[0])
    if (wait := ratelimit.auth_blocked(bk, address=address)) is not None:
        raise ratelimit.RateLimited("Too many failed authentication attempts from this address",
                                    {"kind": "auth", "retry_after_seconds": wait},
                                    verdict=ratelimit.Verdict(limit=bk.settings.auth_failures_per_minute,
                                                              remaining=0, reset_in=wait))
    try:
        user = await users.authenticate(bk, key=key, fresh=fresh)
    except PyMongoError as exc:
        down = backend_unavailable(exc) or Unavailable("The database is unavailable; try again shortly",
                                                       code="DATABASE_UNAVAILABLE")
        raise down from None
    if user is None:
        await ratelimit.record_auth_failure(bk, address=address)
    return user, "Invalid token."


def current_user(request: Request) -> User:
    user = request.scope.get("user")
    if user is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    return user

