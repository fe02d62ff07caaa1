"""Request ids, access logs, Prometheus metrics and the last-resort error boundary, as one pure
ASGI middleware."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.activity import context as request_context
from app.errors import Internal, Unavailable
from app.http.responses import error_for
from app.logs import request_id_var

log = logging.getLogger("app.access")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]+")  # a caller's request id is echoed only when it is this plain

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def route_label(scope: Scope) -> str:
    """The route a request is counted under: the route that served it, or — when it was answered before
    routing (a 401, a 429 of the sign-in limiter) — the route it was for; "unmatched" only when no route
    takes its path."""
    route = scope.get("route")
    if route is None and (app := scope.get("app")) is not None:
        route = next((r for r in getattr(app, "routes", ()) if r.matches(scope)[0] != Match.NONE), None)
    return getattr(route, "path", None) or ("/graphql" if scope["path"].startswith("/graphql") else "unmatched")


class RequestContextMiddleware:
    """Request id, metrics, access log, the error boundary, and a deadline for every request: past
    `timeout` seconds the work is cancelled and the caller gets a 503 REQUEST_TIMEOUT."""

    def __init__(self, app: ASGIApp, *, timeout: float | None = None) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # one id for the connection: what its operations do is audited with it
            captured = request_context.capture(scope, _request_id(scope))
            try:
                await self.app(scope, receive, send)
            finally:
                request_context.release(captured)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id_var.set(rid)
        captured = request_context.capture(scope, rid)  # address, user agent, request id: for the audit log
        status = 500
        started = False
        start = time.perf_counter()

        deadline: asyncio.Timeout | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
                if deadline is not None and any(k == b"content-type" and v.startswith(b"text/event-stream")
                                                for k, v in message["headers"]):
                    deadline.reschedule(None)  # a live stream has its own limits (app/live.py)
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, receive, send_wrapper)
        except TimeoutError:
            log.warning("request deadline passed", extra={"path": scope["path"], "timeout": self.timeout})
            if started:
                raise
            timeout = Unavailable(f"The request did not complete within {self.timeout} s; try again",
                                  {"request_id": rid}, code="REQUEST_TIMEOUT")
            await error_for(scope["path"], timeout)(scope, receive, send_wrapper)
        except Exception:  # the error boundary: masked for the client, logged in full with the request id
            log.exception("unhandled error", extra={"path": scope["path"]})
            if started:
                raise
            await error_for(scope["path"], Internal("Internal server error", {"request_id": rid}))(
                scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            path = route_label(scope)
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(elapsed)
            if path not in ("/healthz", "/metrics"):
                log.info("request", extra={"method": scope["method"], "path": scope["path"], "status": status,
                                           "ms": round(elapsed * 1000, 2)})
            request_context.release(captured)
            request_id_var.reset(token)


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is plain enough to echo, else a new one."""
    incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    return incoming if 0 < len(incoming) <= 128 and _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
