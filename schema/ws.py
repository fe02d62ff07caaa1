"""GraphQL over WebSocket at /graphql: the graphql-transport-ws protocol (the `graphql-ws` library's).

One connection, in order:
1. the upgrade must offer the `graphql-transport-ws` subprotocol, else the socket is accepted without
   one and closed 4406 "Subprotocol not acceptable" (as graphql-ws's own server does);
2. `connection_init` within INIT_TIMEOUT_SECONDS (else 4408). Its payload carries the credentials
   (`{"Authorization": "Token <key>"}` or `"Bearer <JWT>"`; `authorization`, or `token` with the bare key,
   also taken), else the upgrade request's `Authorization` header is used, else its `sessionid` cookie —
   a session only with its CSRF token in the payload (`{"X-CSRFToken": …}`), which another site's page
   cannot read. The lookup is the HTTP middleware's own (app/http/auth.py: its backends, the
   failed-authentication limit per address), asked of the database, never the caches. No user: 4403
   Forbidden (the address past its failed-attempt limit: 4403 too, before any lookup); the database
   down: 1013 "Try again later". A second `connection_init`: 4429. Then `connection_ack`.
3. `subscribe` {id, payload: {query, variables, operationName}}: before the ack 4401; an id already
   running 4409 "Subscriber for <id> already exists"; past MAX_OPERATIONS running on the connection an
   `error` TOO_MANY_SUBSCRIPTIONS. Then the checks HTTP makes — schema.app.check_operation: parse
   (token limit), limits, rate limit per root field by class (a mutation's fields are writes),
   validation — each refusal answered `{"type": "error", "id", "payload": [errors]}`, the connection
   kept. Subscriptions stream each result as `next` then `complete`; queries and mutations run once
   (within the HTTP request deadline): one `next`, then `complete`.
   A failure before a subscription's first result (its resolver refusing: an unknown generation, or
   one the caller may not see, is GENERATION_NOT_FOUND either way; too many live streams) is an
   `error` message, no `complete` — what graphql-ws clients expect when a source stream cannot be
   created (their sink's `error`). Errors in later results come as `next` with `errors`.
   Credentials do not outlive their token: every `subscribe` first re-checks the token (session, SSO
   token's expiry) and its user against the database (not the 10 s cache), and an open connection does so
   every `graphql_ws_recheck_seconds` (5); a deleted token, an ended session, an expired SSO token or a
   deactivated user closes it 4403, ending its running operations and subscriptions. Connections are
   capped per address (`graphql_ws_max_per_address`, 50, before any work) and per user
   (`graphql_ws_max_per_user`, 20, at `connection_init`) in each process: past either, the socket is
   closed 1008.
4. `complete` from the client cancels that operation (nothing is sent back); a disconnect or close
   cancels them all. `ping` is answered `pong` (its payload echoed); `pong` is ignored.
5. Every message is parsed by app.jsonsafe (the JSON rules of HTTP bodies) and must be at most
   `max_body_bytes`; a larger, malformed or wrongly shaped message, or one only a server sends,
   closes the connection 4400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from graphql import OperationType
from pymongo.errors import PyMongoError
from starlette.websockets import WebSocket, WebSocketState

from app import live
from app.backends import Backends
from app.errors import ServiceError
from app.http import ratelimit
from app.http.auth import authenticate, cookies
from app.http.responses import dumps, graphql_error_entry as error_entry
from app.jsonsafe import JSONRejected, loads
from app.logs import request_id_var
from app.users import service as users
from app.users import sessions
from app.users.models import User
from schema.app import WEBSOCKET, WEBSOCKET_PROTOCOL, Checked, Refused, check_operation
from schema.context import Context
from schema.schema import schema

log = logging.getLogger(__name__)

SUBPROTOCOL = WEBSOCKET_PROTOCOL
INIT_TIMEOUT_SECONDS = 3.0  # graphql-ws's own default connectionInitWaitTimeout
MAX_OPERATIONS = 10         # operations running at once on one connection
TOKEN_KEYS = ("Authorization", "authorization", "token")
CSRF_KEYS = (sessions.CSRF_HEADER, sessions.CSRF_HEADER.lower(), sessions.CSRF_COOKIE)
# Open connections per address (checked before any work) and per user (once authenticated), in this
# process, like the live streams (app/live.py): past either cap the socket is closed 1008.
SOCKETS = live.Slots()
TOO_MANY_CLOSE = 1008


class Close(Exception):
    """Close the connection with this code and reason."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:123].decode(errors="ignore")  # a close reason is at most 123 bytes


INVALID = "Invalid message received"


def _optional(payload: dict, key: str, kind: type) -> bool:
    return payload.get(key) is None or isinstance(payload[key], kind)


def check_message(msg: Any) -> dict[str, Any]:
    """The message, when its shape is one a client may send; else Close(4400)."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise Close(4400, INVALID)
    kind = msg["type"]
    if kind in ("connection_init", "ping", "pong"):
        if not _optional(msg, "payload", dict):
            raise Close(4400, INVALID)
    elif kind in ("subscribe", "complete"):
        if not isinstance(msg.get("id"), str) or not msg["id"]:
            raise Close(4400, INVALID)
        if kind == "subscribe":
            payload = msg.get("payload")
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str) or not (
                    _optional(payload, "variables", dict) and _optional(payload, "operationName", str)
                    and _optional(payload, "extensions", dict)):
                raise Close(4400, INVALID)
    else:  # connection_ack, next, error: only a server sends them; anything else is not the protocol
        raise Close(4400, f"Unexpected message of type {kind[:40]} received")
    return msg


def _token_header(payload: dict[str, Any] | None, websocket: WebSocket) -> str:
    for key in TOKEN_KEYS:
        value = (payload or {}).get(key)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            return f"Token {value}" if key == "token" and " " not in value else value
    return websocket.headers.get("authorization", "")


def _csrf_token(payload: dict[str, Any] | None) -> str:
    for key in CSRF_KEYS:
        value = (payload or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


class Connection:
    def __init__(self, websocket: WebSocket, bk: Backends) -> None:
        self.ws = websocket
        self.bk = bk
        self.settings = bk.settings
        self.user: User | None = None
        self.credential: str | users.Credential = ""  # what this connection signed in with, re-checked while it lives
        self.slots: list[str] = []  # what this connection counts against the caps (SOCKETS)
        self.initialised = False  # connection_init received
        self.acknowledged = False
        self.operations: dict[str, asyncio.Task] = {}
        self.send_lock = asyncio.Lock()

    async def run(self) -> None:
        if SUBPROTOCOL not in (self.ws.scope.get("subprotocols") or []):
            await self.ws.accept()
            await self._close(4406, "Subprotocol not acceptable")
            return
        address = "addr:" + ratelimit.client_key((self.ws.scope.get("client") or ("unknown", 0))[0])
        if not SOCKETS.take((address, self.settings.graphql_ws_max_per_address)):
            await self.ws.accept()
            await self._close(TOO_MANY_CLOSE, "Too many connections from this address")
            return
        self.slots = [address]
        watcher = None
        try:  # from here on the slots are given back however the connection ends (an accept that fails too)
            await self.ws.accept(subprotocol=SUBPROTOCOL)
            watcher = asyncio.create_task(self._watch_credentials())
            await self._serve()
        except Close as exc:
            await self._cancel_all()
            await self._close(exc.code, exc.reason)
        finally:
            if watcher is not None:
                watcher.cancel()
            await self._cancel_all()
            SOCKETS.give(*self.slots)
            self.slots = []

    async def _check_credentials(self) -> None:
        """The token and its user, asked of the database (never the cache): a deleted token or a
        deactivated user ends the connection (4403), whatever it was doing."""
        try:
            user = await users.authenticate(self.bk, key=self.credential, fresh=True)
        except PyMongoError:
            raise Close(1013, "Try again later") from None
        if user is None:
            raise Close(4403, "Forbidden: the connection's credentials are no longer valid")
        self.user = user

    async def _watch_credentials(self) -> None:
        """Re-check an acknowledged connection's credentials every `graphql_ws_recheck_seconds`, so an idle
        socket or a running subscription ends too when its token or user does."""
        while True:
            await asyncio.sleep(self.settings.graphql_ws_recheck_seconds)
            if not self.acknowledged:
                continue
            try:
                await self._check_credentials()
            except Close as exc:
                if exc.code == 1013:  # the database is out of reach: keep going, check again later
                    continue
                await self._cancel_all()
                await self._close(exc.code, exc.reason)
                return
            except Exception:  # noqa: BLE001 - never let one odd failure stop the checks for good
                log.exception("websocket credentials re-check failed")

    async def _serve(self) -> None:
        deadline = asyncio.get_running_loop().time() + INIT_TIMEOUT_SECONDS
        while True:
            if self.initialised:
                message = await self.ws.receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await self.ws.receive()
                except TimeoutError:
                    raise Close(4408, "Connection initialisation timeout") from None
            if message["type"] == "websocket.disconnect":
                return
            await self._handle(self._decode(message))

    def _decode(self, message: dict[str, Any]) -> dict[str, Any]:
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes")
        if raw is None:
            raise Close(4400, INVALID)
        limit = self.settings.max_body_bytes
        if len(raw) > limit or (isinstance(raw, str) and len(raw.encode()) > limit):
            raise Close(4400, f"Message larger than {limit} bytes")
        try:
            return check_message(loads(raw, max_depth=self.settings.max_json_depth))
        except JSONRejected:
            raise Close(4400, INVALID) from None

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "connection_init":
            if self.initialised:
                raise Close(4429, "Too many initialisation requests")
            self.initialised = True
            self.user = await self._authenticate(msg.get("payload"))
            if not SOCKETS.take(("user:" + self.user.id, self.settings.graphql_ws_max_per_user)):
                raise Close(TOO_MANY_CLOSE, "Too many connections for this user")
            self.slots.append("user:" + self.user.id)
            self.acknowledged = True
            await self._send({"type": "connection_ack"})
        elif kind == "ping":
            await self._send({"type": "pong", **({"payload": msg["payload"]} if msg.get("payload") else {})})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            if not self.acknowledged:
                raise Close(4401, "Unauthorized")
            op_id = msg["id"]
            if op_id in self.operations:
                raise Close(4409, f"Subscriber for {op_id} already exists")
            await self._check_credentials()  # every operation, before any work
            if len(self.operations) >= MAX_OPERATIONS:
                await self._send({"type": "error", "id": op_id, "payload": [error_entry(
                    f"At most {MAX_OPERATIONS} operations may run at once on one connection; complete one first",
                    "TOO_MANY_SUBSCRIPTIONS", {"max": MAX_OPERATIONS})]})
                return
            self.operations[op_id] = asyncio.create_task(self._operate(op_id, msg["payload"]))
        elif kind == "complete" and (task := self.operations.pop(msg["id"], None)) is not None:
            task.cancel()

    async def _authenticate(self, payload: dict[str, Any] | None) -> User:
        header = _token_header(payload, self.ws)
        scope = {"headers": [(b"authorization", header.encode())] if header else [],
                 "client": self.ws.scope.get("client")}
        if not header and (key := cookies(self.ws.scope).get(sessions.COOKIE)):
            scope["headers"].append((b"cookie", f"{sessions.COOKIE}={key}".encode("latin-1", "replace")))
        try:  # the database, not the caches: a credential revoked a moment ago opens nothing
            signed, _, _ = await authenticate(scope, self.bk, fresh=True)
        except ratelimit.RateLimited:
            raise Close(4403, "Forbidden: too many failed authentication attempts") from None
        except ServiceError:
            raise Close(1013, "Try again later") from None
        if signed is None:
            raise Close(4403, "Forbidden")
        if signed.session is not None and not signed.session.csrf_matches(_csrf_token(payload)):
            raise Close(4403, "Forbidden: a session needs its CSRF token in the connection_init payload")
        self.credential = signed.credential
        return signed.user

    # --- one operation ------------------------------------------------------------------------------

    async def _operate(self, op_id: str, payload: dict[str, Any]) -> None:
        try:
            try:
                checked = await check_operation(self.bk, self.user, payload, method=WEBSOCKET)
            except Refused as exc:
                await self._send({"type": "error", "id": op_id, "payload": exc.errors})
                return
            context = Context(request=self.ws, response=None, backends=self.bk, user=self.user,
                              document=checked.document)
            if checked.operation_type == OperationType.SUBSCRIPTION:
                completed = await self._stream(op_id, checked, context)
            else:
                completed = await self._execute(op_id, checked, context)
            if completed:
                await self._send({"type": "complete", "id": op_id})
        except Exception:  # this operation fails; the connection and its other operations go on
            log.exception("websocket operation failed")
            await self._send({"type": "error", "id": op_id, "payload": [error_entry(
                "Unexpected error.", "INTERNAL_ERROR", {"request_id": request_id_var.get()})]})
        finally:
            if self.operations.get(op_id) is asyncio.current_task():
                del self.operations[op_id]

    async def _execute(self, op_id: str, checked: Checked, context: Context) -> bool:
        try:
            async with asyncio.timeout(self.settings.request_timeout_seconds):
                result = await schema.execute(checked.query, variable_values=checked.variables,
                                              context_value=context, operation_name=checked.operation_name)
        except TimeoutError:
            await self._send({"type": "error", "id": op_id, "payload": [error_entry(
                f"The operation did not complete within {self.settings.request_timeout_seconds} s; try again",
                "REQUEST_TIMEOUT")]})
            return False
        await self._send({"type": "next", "id": op_id, "payload": _payload(result)})
        return True

    async def _stream(self, op_id: str, checked: Checked, context: Context) -> bool:
        results = await schema.subscribe(checked.query, variable_values=checked.variables, context_value=context,
                                         operation_name=checked.operation_name)
        first = True
        async with contextlib.aclosing(results):
            async for result in results:
                if first and result.data is None and result.errors:  # the stream could not start
                    await self._send({"type": "error", "id": op_id,
                                      "payload": [err.formatted for err in result.errors]})
                    return False
                first = False
                await self._send({"type": "next", "id": op_id, "payload": _payload(result)})
        return True

    # --- the socket ---------------------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        text = dumps(message).decode()
        async with self.send_lock:
            if self.ws.application_state != WebSocketState.CONNECTED:
                return
            try:
                await self.ws.send_text(text)
            except Exception as exc:  # noqa: BLE001 - the client went away; the receive loop ends it all
                log.debug("websocket send failed", extra={"error": str(exc)[:200]})

    async def _close(self, code: int, reason: str) -> None:
        async with self.send_lock:
            if self.ws.application_state != WebSocketState.CONNECTED:
                return
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason)

    async def _cancel_all(self) -> None:
        tasks = list(self.operations.values())
        self.operations.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _payload(result) -> dict[str, Any]:
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [err.formatted for err in result.errors]
    return body


async def graphql_ws_endpoint(websocket: WebSocket) -> None:
    token = request_id_var.set(uuid.uuid4().hex)  # one id per connection, in the logs of all its operations
    try:
        await Connection(websocket, websocket.app.state.backends).run()
    finally:
        request_id_var.reset(token)
