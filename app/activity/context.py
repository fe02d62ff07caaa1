"""The request an action is taken in — where it came from and how its caller signed in — captured once per
request by the request middleware (app/http/observability.py) and read by the audit log and the usage
events (app/activity/service.py), so that no caller has to pass it along.

A leaf module (no project imports), like app/users/models.py: the HTTP layer below the domains sets it.
Outside a request (a worker, a command) there is none and the fields are null."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, Mapping

USER_AGENT_MAX = 512  # characters of a User-Agent kept


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None
    ip: str | None
    user_agent: str | None
    # the request's ASGI scope: the authentication middleware runs inside the one that captures this, and
    # puts the user (scope["user"]) and how they signed in (scope["auth_method"]) there afterwards
    scope: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def auth_method(self) -> str | None:
        """How the caller signed in: what the authentication put in the scope ("token", "session", "sso"),
        else "token" once a user is signed in (the only method that sets none); None before that."""
        method = self.scope.get("auth_method")
        if method:
            return str(method)
        return "token" if self.scope.get("user") is not None or self.scope.get("type") == "websocket" else None

    def fields(self) -> dict[str, Any]:
        return {"ip": self.ip, "user_agent": self.user_agent, "request_id": self.request_id,
                "auth_method": self.auth_method}


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)
NONE = {"ip": None, "user_agent": None, "request_id": None, "auth_method": None}


def capture(scope: Mapping[str, Any], request_id: str | None) -> contextvars.Token:
    """Record the request `scope` describes as the current one (until `release(token)`)."""
    client = scope.get("client")
    agent = next((v for k, v in scope.get("headers") or () if k == b"user-agent"), None)
    return _current.set(RequestContext(
        request_id=request_id, ip=str(client[0]) if client else None,
        user_agent=agent.decode("latin-1")[:USER_AGENT_MAX] if agent is not None else None, scope=scope))


def release(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> RequestContext | None:
    return _current.get()


def fields() -> dict[str, Any]:
    """{ip, user_agent, request_id, auth_method} of the current request (all None outside one)."""
    ctx = _current.get()
    return ctx.fields() if ctx is not None else dict(NONE)
