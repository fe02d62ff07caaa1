"""Authentication for every API route (REST and GraphQL): one middleware of pluggable backends, then the
per-user rate limit for REST; health routes are open.

The backend is chosen by what the request presents (an Authorization header always wins over a cookie):
- `Authorization: Token <key>`: an API token (app/users/service.py);
- `Authorization: Bearer <JWT>`: SSO, an OpenID Connect ID token (app/users/oidc.py);
- no Authorization header and a `sessionid` cookie: a session signed in by password (app/users/sessions.py).
Every backend shares the rest: a credential validated in the last few seconds costs no I/O, failed lookups
are limited per client address (429 before any lookup once past the limit), a 401 names the scheme in
`WWW-Authenticate`, and the user is put in scope["user"] with how they signed in in scope["auth_method"]
("token", "session" or "sso"). Unsafe methods (anything but GET, HEAD, OPTIONS, TRACE) on a session need
the `X-CSRFToken` header equal to the `csrftoken` cookie and to the session's own token, else 403
`CSRF_FAILED`; a header (token, SSO) cannot be sent by another site's page, so those are not asked.
Signing in (OPEN_PATHS) is reached without credentials too.

A credential that is not even well-formed (a session key or a JWT that cannot be one, a header of an unknown
scheme) is refused without any lookup and not counted against the address; a token key always is (as it
always was), and so is a well-formed session key or JWT that does not sign in.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from http.cookies import CookieError
from urllib.parse import parse_qs

from pymongo.errors import PyMongoError
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import NotAuthenticated, PermissionDenied, ServiceError, Unavailable, backend_unavailable
from app.http import ratelimit
from app.http.responses import RESPONSE_HEADERS, error_for
from app.users import oidc, sessions
from app.users import service as users
from app.users.models import Classification, Role, User

PROTECTED_PREFIXES = ("/api/", "/graphql")
LOGIN = "/api/auth/login"
OPEN_PATHS = frozenset({LOGIN})  # served without a user too (as ANONYMOUS)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The caller of an open path who presents no valid credentials: passes the route's role check, owns nothing.
ANONYMOUS = User(id="", username="", role=Role.VIEWER, clearance=Classification.PUBLIC, is_active=False)
NOT_PROVIDED = "Authentication credentials were not provided."
BAD_HEADER = "Invalid authorization header. Use 'Authorization: Token <key>' or 'Authorization: Bearer <JWT>'."


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


def cookies(scope: Scope) -> dict[str, str]:
    try:
        return cookie_parser(dict(scope["headers"]).get(b"cookie", b"").decode("latin-1"))
    except (CookieError, ValueError):
        return {}


@dataclass(frozen=True)
class SignedIn:
    user: User
    method: str                          # "token" | "session" | "sso"
    credential: str | users.Credential   # what long-lived responses re-check (users.request_credential)
    session: sessions.Session | None = None


class Failed(Exception):
    """A credential that does not sign in, and why (the 401's message)."""


class TokenBackend:
    method, challenge, invalid = "token", "Token", "Invalid token."

    def well_formed(self, secret: str) -> bool:
        return True  # every key is looked up (and a failure counted), whatever it looks like

    def cached(self, bk, secret: str) -> SignedIn | None:
        user = users.cached_user(key=secret)
        return SignedIn(user, self.method, secret) if user is not None else None

    async def lookup(self, bk, secret: str, *, fresh: bool) -> SignedIn | None:
        user = await users.authenticate(bk, key=secret, fresh=fresh)
        return SignedIn(user, self.method, secret) if user is not None else None


class SessionBackend:
    method, challenge, invalid = "session", "Token", "Invalid or expired session: sign in again."

    def well_formed(self, secret: str) -> bool:
        return sessions.well_formed(secret)

    def cached(self, bk, secret: str) -> SignedIn | None:
        found = sessions.cached(secret)
        return self._signed(found, secret)

    async def lookup(self, bk, secret: str, *, fresh: bool) -> SignedIn | None:
        return self._signed(await sessions.lookup(bk, key=secret, fresh=fresh), secret)

    def _signed(self, found: sessions.Session | None, secret: str) -> SignedIn | None:
        if found is None:
            return None
        return SignedIn(found.user, self.method, sessions.credential(secret), found)


class SSOBackend:
    method, challenge, invalid = "sso", 'Bearer error="invalid_token"', "Invalid bearer token."

    def well_formed(self, secret: str) -> bool:
        return oidc.well_formed(secret)

    def cached(self, bk, secret: str) -> SignedIn | None:
        found = oidc.cached(secret, bk.settings.oidc_leeway_seconds)
        return self._signed(*found) if found is not None else None

    async def lookup(self, bk, secret: str, *, fresh: bool) -> SignedIn | None:
        if not bk.settings.oidc_providers:
            raise Failed("No SSO provider is configured: use 'Authorization: Token <key>'.")
        try:
            return self._signed(*await oidc.authenticate(bk, secret))
        except oidc.Refused as exc:
            raise Failed(str(exc)) from None

    def _signed(self, user: User, expires_at: float) -> SignedIn:
        return SignedIn(user, self.method, oidc.credential(user.id, expires_at))


TOKEN, SESSION, SSO = TokenBackend(), SessionBackend(), SSOBackend()
SCHEMES = {"token": TOKEN, "bearer": SSO}  # Authorization header scheme -> backend


def presented(scope: Scope) -> tuple[TokenBackend | SessionBackend | SSOBackend | None, str, str]:
    """(the backend, the credential) the request presents, or (None, "", why not)."""
    raw = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").strip()
    if raw:
        scheme, _, secret = raw.partition(" ")
        backend = SCHEMES.get(scheme.lower())
        return (backend, secret.strip(), "") if backend is not None and secret.strip() else (None, "", BAD_HEADER)
    if key := cookies(scope).get(sessions.COOKIE):
        return SESSION, key, ""
    return None, "", NOT_PROVIDED


def token_key(scope: Scope) -> str | None:
    """The key of the scope's `Authorization: Token <key>` header, or None when there is no such header."""
    backend, secret, _ = presented(scope)
    return secret if backend is TOKEN else None


async def authenticate(scope: Scope, bk, *, fresh: bool = False) -> tuple[SignedIn | None, str, str]:
    """(who signed in, "", "") or (None, why not, the WWW-Authenticate challenge), for every transport (HTTP
    here, WebSocket in schema/ws.py): cached credentials, the failed-attempt limit per address (RateLimited).
    `fresh`: never the caches (a WebSocket, which may run writes for hours, asks the database)."""
    backend, secret, error = presented(scope)
    if backend is None:
        return None, error, TOKEN.challenge
    if not backend.well_formed(secret):
        return None, backend.invalid, backend.challenge
    if not fresh and (signed := backend.cached(bk, secret)) is not None:
        return signed, "", ""
    address = ratelimit.client_key((scope.get("client") or ("unknown", 0))[0])
    if (wait := ratelimit.auth_blocked(bk, address=address)) is not None:
        raise ratelimit.RateLimited("Too many failed authentication attempts from this address",
                                    {"kind": "auth", "retry_after_seconds": wait},
                                    verdict=ratelimit.Verdict(limit=bk.settings.auth_failures_per_minute,
                                                              remaining=0, reset_in=wait))
    try:
        signed, error = await backend.lookup(bk, secret, fresh=fresh), backend.invalid
    except Failed as exc:
        signed, error = None, str(exc)
    except PyMongoError as exc:
        down = backend_unavailable(exc) or Unavailable("The database is unavailable; try again shortly",
                                                       code="DATABASE_UNAVAILABLE")
        raise down from None
    if signed is None:
        await ratelimit.record_auth_failure(bk, address=address)
        return None, error, backend.challenge
    return signed, "", ""


def csrf_refusal(scope: Scope, session: sessions.Session) -> str | None:
    """Why an unsafe request on a session fails the CSRF check (None: it passes): `X-CSRFToken` must equal
    the `csrftoken` cookie and be the session's own token (both compared in constant time)."""
    header = dict(scope["headers"]).get(sessions.CSRF_HEADER.lower().encode(), b"").decode("latin-1").strip()
    if not header:
        return "CSRF Failed: CSRF token missing."
    cookie = cookies(scope).get(sessions.CSRF_COOKIE, "")
    same = hmac.compare_digest(header.encode("utf-8", "surrogateescape"), cookie.encode("utf-8", "surrogateescape"))
    return None if same and session.csrf_matches(header) else "CSRF Failed: CSRF token incorrect."


class AuthMiddleware:
    """Puts the caller in scope["user"] (and scope["auth_method"]), or answers 401 before the route runs.
    Only the static GraphiQL page (in development) is served without a user, and the sign-in route with
    ANONYMOUS; every other operation, by any method, needs one."""

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
        route = path.rstrip("/")
        try:
            signed, error, challenge = await authenticate(scope, bk)
        except ServiceError as exc:
            headers = ratelimit.limited_headers(exc) if isinstance(exc, ratelimit.RateLimited) else None
            await error_for(path, exc, headers)(scope, receive, send)
            return
        if signed is None and route in OPEN_PATHS:
            scope["user"], scope["auth_method"] = ANONYMOUS, "anonymous"
            await self.app(scope, receive, send)
            return
        if signed is None:
            await error_for(path, NotAuthenticated(error), {"WWW-Authenticate": challenge})(scope, receive, send)
            return
        if signed.session is not None and scope["method"] not in SAFE_METHODS and route != LOGIN:
            if (refusal := csrf_refusal(scope, signed.session)) is not None:
                await error_for(path, PermissionDenied(refusal, code="CSRF_FAILED"))(scope, receive, send)
                return
        scope["user"], scope["auth_method"] = signed.user, signed.method
        credential = users.request_credential.set(signed.credential)  # re-checked by long-lived streams
        try:
            await self._authenticated(scope, receive, send, bk, signed.user)
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
        if verdict is not None:
            scope[RESPONSE_HEADERS] = [(k.lower().encode(), v.encode()) for k, v in ratelimit.headers(verdict).items()]
        await self.app(scope, receive, send)


TokenAuthMiddleware = AuthMiddleware  # the name app/main.py knows it by


def current_user(request: Request) -> User:
    user = request.scope.get("user")
    if user is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    return user


def auth_method(request: Request) -> str | None:
    """How the request's user signed in: "token", "session", "sso" ("anonymous" on the sign-in and sign-out
    routes without credentials; None: not signed in)."""
    return request.scope.get("auth_method")
