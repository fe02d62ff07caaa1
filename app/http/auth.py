"""Token authentication for every API route (REST and GraphQL), then the per-user rate limit
for REST; health routes are open."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import NotAuthenticated, PermissionDenied
from app.http import ratelimit
from app.http.responses import JSON
from app.users import service as users
from app.users.models import Role, User

PROTECTED_PREFIXES = ("/api/", "/graphql")


class TokenAuthMiddleware:
    """Puts the caller in scope["user"], or answers 401 before the route runs."""

    def __init__(self, app: ASGIApp, *, allow_ide: bool = False) -> None:
        self.app = app
        self.allow_ide = allow_ide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.allow_ide and scope["method"] == "GET" and scope["path"].startswith("/graphql") \
                and b"text/html" in headers.get(b"accept", b""):
            await self.app(scope, receive, send)  # the GraphiQL page itself; its queries carry the token
            return
        user = None
        error = "Authentication credentials were not provided."
        auth = headers.get(b"authorization", b"").decode("latin-1").strip()
        if auth:
            scheme, _, key = auth.partition(" ")
            if scheme.lower() != "token" or not key.strip():
                error = "Invalid token header. Use 'Authorization: Token <key>'."
            else:
                user = await users.authenticate(scope["app"].state.backends, key=key.strip())
                error = "Invalid token."
        if user is None:
            body = NotAuthenticated(error).to_dict()
            await JSON(body, status_code=401, headers={"WWW-Authenticate": "Token"})(scope, receive, send)
            return
        scope["user"] = user
        if scope["path"].startswith("/graphql"):  # limited per operation by schema.ratelimit
            await self.app(scope, receive, send)
            return
        try:
            verdict = await ratelimit.check(scope["app"].state.backends, user_id=user.id,
                                            kind=ratelimit.classify(scope["method"], scope["path"]))
        except ratelimit.RateLimited as exc:
            retry = str(exc.details["retry_after_seconds"])
            await JSON(exc.to_dict(), status_code=429, headers={"Retry-After": retry})(scope, receive, send)
            return
        if verdict is None:
            await self.app(scope, receive, send)
            return
        extra = [(b"x-ratelimit-limit", str(verdict.limit).encode()),
                 (b"x-ratelimit-remaining", str(verdict.remaining).encode())]

        async def send_with_limits(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)


def current_user(request: Request) -> User:
    user = request.scope.get("user")
    if user is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    return user


def require_role(user: User, role: Role) -> User:
    """403 unless the user's role is at least `role`."""
    if not user.has_role(role):
        raise PermissionDenied(f"This action requires the '{role.value}' role", {"role": user.role.value,
                                                                                  "required": role.value})
    return user
