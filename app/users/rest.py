"""Sign-in over REST, declared as resources (app/http/resources.py): session sign-in and sign-out (Django's
conventions: the `sessionid` and `csrftoken` cookies, the `X-CSRFToken` header), who the caller is, and a
password change. The rules are in app/users/signin.py; the middleware (app/http/auth.py) lets sign-in
through without credentials."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from app import permissions
from app.backends import Backends
from app.http import ratelimit
from app.http.auth import auth_method
from app.http.resources import Call, Op, Resource
from app.http.responses import JSON, UnsupportedMediaType
from app.listing import Page
from app.permissions import Rule
from app.timefmt import isoz
from app.users import accounts, sessions, signin
from app.users.models import Role, User
from app.users.outputs import ApiToken, Me, NewApiToken, PermissionMatrix, UserAccount

DESCRIPTION = ("Signing in: a session for browsers (`POST /api/auth/login/` sets the `sessionid` and `csrftoken` "
               "cookies; unsafe requests then send `X-CSRFToken`), who the caller is (`/api/auth/me/`), a password "
               "change. API tokens and SSO bearer tokens need none of these.")


class LoginRequest(BaseModel):
    """A username and its password (sent as JSON: `Content-Type: application/json`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"username": "alice", "password": "correct horse battery staple"}]})
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(BaseModel):
    """The current password and the new one (at least 8 characters)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"old_password": "correct horse battery staple", "new_password": "another long passphrase"}]})
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


SIGN_IN = Rule(signed_in=False, classified=False, note="signing in")
OWN = Rule(classified=False, ownership="the caller's own account")


async def _serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict]:
    return docs


def me_json(user: User, method: str) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email, "team": user.team,
            "role": user.role.value, "clearance": user.clearance.value, "auth_method": method,
            "is_service_account": user.service_account, "sso_provider": user.sso_provider}


def _address(request: Request) -> str:
    return ratelimit.client_key((request.scope.get("client") or ("unknown", 0))[0])


def _limited(exc: ratelimit.RateLimited) -> Response:
    """A 429 with `Retry-After` (and the limit's headers)."""
    return JSON(exc.to_dict(), status_code=exc.status, headers=ratelimit.limited_headers(exc))


def _cookie_options(request: Request) -> dict[str, Any]:
    settings = request.app.state.backends.settings
    secure = settings.session_cookie_secure
    if secure is None:
        secure = settings.environment not in ("development", "test")
    return {"path": request.scope.get("root_path") or "/", "secure": secure, "samesite": "lax"}


async def login(call: Call) -> Response:
    """Sign in with a username and password: a session

    Sets the `sessionid` cookie (HttpOnly, SameSite=Lax, Secure outside development) and the readable
    `csrftoken` cookie, and answers the user. A wrong username or password, a deactivated user, a service
    account or an SSO user: 401 `INVALID_CREDENTIALS`, alike. Failed attempts are limited per username and
    per address (429 with `Retry-After`). The body must be sent as `application/json` (415 otherwise)."""
    request = call.request
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Send the credentials as application/json", {"allowed": ["application/json"]})
    try:
        user, key, csrf = await signin.login(call.bk, username=call.body.username, password=call.body.password,
                                             address=_address(request),
                                             user_agent=request.headers.get("user-agent", ""))
    except ratelimit.RateLimited as exc:
        return _limited(exc)
    if (old := request.cookies.get(sessions.COOKIE)) and old != key:
        await sessions.end(call.bk, key=old)  # the browser's previous session, if any, ends here
    response = JSON(me_json(user, "session"))
    options, max_age = _cookie_options(request), call.bk.settings.session_lifetime_seconds
    response.set_cookie(sessions.COOKIE, key, max_age=max_age, httponly=True, **options)
    response.set_cookie(sessions.CSRF_COOKIE, csrf, max_age=max_age, httponly=False, **options)
    return response


async def logout(call: Call) -> Response:
    """Sign out: end the session

    Ends the session of the `sessionid` cookie (an unsafe request on a session: send `X-CSRFToken`) and clears
    both cookies. Signed in otherwise (a token), it only ends the cookie's session if there is one."""
    request = call.request
    if key := request.cookies.get(sessions.COOKIE):
        await signin.logout(call.bk, key=key, user=call.user)
    response = Response(status_code=204)
    options = _cookie_options(request)
    response.delete_cookie(sessions.COOKIE, httponly=True, **options)
    response.delete_cookie(sessions.CSRF_COOKIE, httponly=False, **options)
    return response


async def me(call: Call) -> dict[str, Any]:
    """The signed-in user: id, username, role, clearance, and how they signed in (any method answers)"""
    return me_json(call.user, auth_method(call.request) or "token")


async def change_password(call: Call) -> Response:
    """Change one's own password

    Needs the current password (a wrong one is a 400 `INVALID_PASSWORD`, limited like a sign-in). Every
    other session of the user ends; the one asking, if it is a session, stays signed in. Service accounts
    and SSO users have no password (409 `PASSWORD_NOT_ALLOWED`)."""
    request = call.request
    keep = request.cookies.get(sessions.COOKIE) if auth_method(request) == "session" else None
    try:
        await signin.change_password(call.bk, user=call.user, old_password=call.body.old_password,
                                     new_password=call.body.new_password, address=_address(request),
                                     keep_session=keep)
    except ratelimit.RateLimited as exc:
        return _limited(exc)
    return Response(status_code=204)


# --- users and tokens (admins) -------------------------------------------------------------------------

def user_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], **{k: doc.get(k) for k in ("username", "email", "role", "clearance")},
            "team": doc.get("team") or "", "is_active": doc.get("is_active", True),
            "is_service_account": bool(doc.get("service_account")), "sso_provider": doc.get("sso_provider"),
            "has_password": bool(doc.get("password_hash")),
            "created_at": isoz(doc.get("created_at")), "updated_at": isoz(doc.get("updated_at"))}


def token_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "name": doc.get("name") or "", "created_at": isoz(doc.get("created_at")),
            "created_by": doc.get("created_by"), **({"key": doc["key"]} if "key" in doc else {})}


async def _users(bk: Backends, user: User, docs: list[dict]) -> list[dict]:
    return [user_json(d) for d in docs]


async def list_users(call: Call) -> Page:
    """List users (admins): by role, clearance, team, active or not, service accounts or people"""
    return await accounts.list_users(call.bk, params=call.params)


async def create_user(call: Call) -> dict:
    """Create a user (admins)

    With a role and a clearance (not above the admin's own: 403 `CLEARANCE_TOO_HIGH`), optionally a password
    (service accounts take none). A username already taken is a 409 `USER_EXISTS`."""
    return await call.one(await accounts.create(call.bk, actor=call.user, data=call.body))


async def user_detail(call: Call) -> dict:
    """Get one user (admins)"""
    return await call.one(await accounts.get_user(call.bk, user_id=call.key))


async def change_user(call: Call) -> dict:
    """Change a user's role, clearance, team, email, or deactivate (`is_active: false`) or reactivate it (admins)

    Deactivation ends every session of the user and revokes every token at once. An admin neither deactivates
    nor demotes themselves (409 `SELF_LOCKOUT`), nor grants a clearance above their own (403)."""
    return await call.one(await accounts.change(call.bk, actor=call.user, user_id=call.key, data=call.body))


async def list_tokens(call: Call) -> list[dict]:
    """List a user's API tokens, newest first, without their secrets (admins)"""
    return [token_json(d) for d in await accounts.tokens(call.bk, user_id=call.key)]


async def create_token(call: Call) -> dict:
    """Create an API token for a user (admins): its `key` is shown this once"""
    return token_json(await accounts.create_token(call.bk, actor=call.user, user_id=call.key, data=call.body))


async def revoke_token(call: Call) -> Response:
    """Revoke one of a user's API tokens (admins)"""
    await accounts.revoke_token(call.bk, actor=call.user, user_id=call.key,
                                token_id=call.request.path_params["token_id"])
    return Response(status_code=204)


async def permission_matrix(call: Call) -> dict[str, Any]:
    """The permission matrix (admins): every REST operation and GraphQL root field, who may call it"""
    return permissions.matrix_json(call.request.app.state.permissions)


CSRF = 403  # an unsafe request on a session without its X-CSRFToken (CSRF_FAILED)
_ME = Op(me, OWN, response=Me, errors=(CSRF,))
ADMIN = accounts.MANAGE_RULE
RESOURCES = [
    Resource(base="/api/auth/login", serialize=_serialize, description=DESCRIPTION,
             collection={"POST": Op(login, SIGN_IN, LoginRequest, response=Me)}),
    Resource(base="/api/auth/logout", serialize=_serialize, description="Signing out of a session.",
             collection={"POST": Op(logout, OWN, status=204, errors=(CSRF,))}),
    Resource(base="/api/auth/me", serialize=_serialize, description="Who the caller is, however they signed in.",
             collection={method: _ME for method in ("GET", "POST", "PUT", "PATCH", "DELETE")}),
    Resource(base="/api/auth/password", serialize=_serialize, description="One's own password.",
             collection={"POST": Op(change_password, OWN, PasswordChange, status=204, errors=(CSRF, 409))}),
    Resource(base="/api/auth/users", serialize=_users, tag="users",
             description="Users and their API tokens, managed by admins: create, change role or clearance, "
                         "deactivate (which ends its sessions and revokes its tokens at once), reactivate.",
             collection={"GET": Op(list_users, ADMIN, response=UserAccount, listing=accounts.LIST_SPEC),
                         "POST": Op(create_user, ADMIN, accounts.NewUser, status=201, response=UserAccount,
                                    errors=(409,))},
             item={"GET": Op(user_detail, ADMIN, response=UserAccount),
                   "PATCH": Op(change_user, ADMIN, accounts.UserChange, response=UserAccount, errors=(409,))},
             actions={"tokens": {"GET": Op(list_tokens, ADMIN, response=list[ApiToken]),
                                 "POST": Op(create_token, ADMIN, accounts.NewToken, status=201,
                                            response=NewApiToken, errors=(409,))},
                      "tokens/{token_id}": {"DELETE": Op(revoke_token, ADMIN, status=204)}}),
    Resource(base="/api/auth/permissions", serialize=_serialize, tag="permissions",
             description="The permission matrix, generated from the declarations the routes and fields run with.",
             collection={"GET": Op(permission_matrix, Rule(Role.ADMIN, classified=False), response=PermissionMatrix)}),
]
