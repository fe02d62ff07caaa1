"""Sign-in over REST, declared as resources (app/http/resources.py): session sign-in and sign-out (Django's
conventions: the `sessionid` and `csrftoken` cookies, the `X-CSRFToken` header), who the caller is, and a
password change. The rules are in app/users/signin.py; the middleware (app/http/auth.py) lets sign-in
through without credentials."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from app.http import ratelimit
from app.http.auth import auth_method
from app.http.resources import Call, Op, Resource
from app.http.responses import JSON, UnsupportedMediaType
from app.users import sessions, signin
from app.users.models import User
from app.users.outputs import Me

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


async def _serialize(request: Request, docs: list[dict]) -> list[dict]:
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


CSRF = 403  # an unsafe request on a session without its X-CSRFToken (CSRF_FAILED)
_ME = Op(me, response=Me, errors=(CSRF,))
RESOURCES = [
    Resource(base="/api/auth/login", serialize=_serialize, description=DESCRIPTION,
             collection={"POST": Op(login, body=LoginRequest, response=Me)}),
    Resource(base="/api/auth/logout", serialize=_serialize, description="Signing out of a session.",
             collection={"POST": Op(logout, status=204, errors=(CSRF,))}),
    Resource(base="/api/auth/me", serialize=_serialize, description="Who the caller is, however they signed in.",
             collection={method: _ME for method in ("GET", "POST", "PUT", "PATCH", "DELETE")}),
    Resource(base="/api/auth/password", serialize=_serialize, description="One's own password.",
             collection={"POST": Op(change_password, body=PasswordChange, status=204, errors=(CSRF, 409))}),
]
