"""JSON responses, request bodies and the error handlers shared by every REST route."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Awaitable, Callable, TypeVar

import orjson
from opensearchpy.exceptions import ConnectionError as SearchConnectionError
from opensearchpy.exceptions import NotFoundError as SearchNotFound
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import ServiceError, ValidationFailed, backend_unavailable, pydantic_details
from app.inputs import InputModel
from app.jsonsafe import JSONRejected, loads
from app.timefmt import isoz

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
JSON_TYPES = ("application/json", "application/graphql-response+json")
# The scope key of headers a middleware adds to the request's response, whatever answers it (the rate limit's):
# a list of (name, value) byte pairs, appended where the request id is (app/http/observability.py)
RESPONSE_HEADERS = "ikl.response_headers"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class BodyTooLarge(ServiceError):
    status = 413
    code = "BODY_TOO_LARGE"


def documented(doc: dict, *, fields=(), lists=(), dates=()) -> dict[str, Any]:
    """A stored document's fields in their documented REST shape: plain fields as stored, lists as lists
    ([] when absent), dates as stored (None when absent), written as UTC `…Z` text by `dumps`. The caller
    adds `id` and its own fields."""
    get = doc.get
    out: dict[str, Any] = dict(zip(fields, map(get, fields)))
    out.update({k: list(get(k) or []) for k in lists})
    out.update(zip(dates, map(get, dates)))
    return out


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoz(value)
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# orjson writes what json.dumps(ensure_ascii=False, separators=(",", ":")) writes, byte for byte but for the
# spelling of very small floats (`1e-7` for `1e-07`: the same number), and datetimes itself, as `isoz` does (a
# UTC or naive one; the stored ones are UTC): serializers leave them as datetimes. Other objects go through
# json_default; what orjson refuses (an integer beyond 64 bits, a string that is not valid Unicode) goes the
# json way, which answers or fails as it always did. About ten times faster on a page of 20 incidents.
# A key that is not text (a count by number) is written as json writes it, by a second pass with
# OPT_NON_STR_KEYS: that option costs every body a fifth of orjson's time (14 µs on a page of 20 incidents).
_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_PASSTHROUGH_DATACLASS
_ORJSON_ANY_KEYS = _ORJSON_OPTIONS | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    """A response body: compact UTF-8 JSON, timestamps as `isoz` writes them."""
    for options in (_ORJSON_OPTIONS, _ORJSON_ANY_KEYS):
        try:
            return orjson.dumps(content, default=json_default, option=options)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(content, default=json_default, ensure_ascii=False, separators=(",", ":")).encode()


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(status: int, error: str, details: Any = None, code: str = "ERROR") -> JSON:
    return JSON({"error": error, "details": details, "code": code}, status_code=status)


def graphql_error_entry(message: str, code: str, details: Any = None) -> dict[str, Any]:
    """One request-level error in the GraphQL shape (HTTP bodies and WebSocket `error` messages alike)."""
    ext: dict[str, Any] = {"code": code}
    if details is not None:
        ext["details"] = details
    return {"message": message, "extensions": ext}


def graphql_error(status: int, message: str, code: str, details: Any = None,
                  headers: dict[str, str] | None = None) -> JSON:
    """A request-level failure at /graphql, in the GraphQL error shape."""
    return JSON({"errors": [graphql_error_entry(message, code, details)]}, status_code=status, headers=headers)


def error_for(path: str, exc: ServiceError, headers: dict[str, str] | None = None) -> JSON:
    """The error format of the API the path belongs to: GraphQL's, or REST's {"error", "details", "code"}."""
    if path.startswith("/graphql"):
        return graphql_error(exc.status, exc.error, exc.code, exc.details, headers=headers)
    return JSON(exc.to_dict(), status_code=exc.status, headers=headers)


async def read_json(request: Request, *, default: Any = None) -> Any:
    """The request's JSON body, checked by app.jsonsafe: a 413 past `max_body_bytes` (read no
    further), a 415 for a body that is not JSON (`text/plain` and forms included: a missing
    Content-Type is taken as JSON), a 400 for malformed or unsafe JSON."""
    settings = request.app.state.backends.settings
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = settings.max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("Request body too large", {"max_bytes": limit})
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return default
    if ctype and ctype not in JSON_TYPES:
        raise UnsupportedMediaType(f"Unsupported media type {ctype!r}: send application/json",
                                   {"allowed": ["application/json"]})
    try:
        return loads(raw, max_depth=settings.max_json_depth)
    except JSONRejected as exc:
        message = "Malformed JSON in request body" if exc.code == "MALFORMED_JSON" else "Invalid JSON in request body"
        raise ValidationFailed(message, exc.message, code=exc.code) from None


async def read_body(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body: malformed JSON, unknown fields and wrong types are 400s. Types are
    JSON's, strictly, as the OpenAPI document gives them: `0` is not a date (it was 1970-01-01), `false` not
    a number, `0` not a boolean; a timestamp is an RFC 3339 string. No body is an empty object."""
    data = await read_json(request, default={})
    if not isinstance(data, dict):
        raise ValidationFailed("Request body must be a JSON object", code="INVALID_BODY")
    try:
        if issubclass(model, InputModel):
            data = model.reshape(data)
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise ValidationFailed("Invalid request data", pydantic_details(exc)) from None


async def service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return JSON(exc.to_dict(), status_code=exc.status)


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 400: "BAD_REQUEST", 401: "NOT_AUTHENTICATED",
               403: "PERMISSION_DENIED", 413: "BODY_TOO_LARGE"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail else None
    response = error_response(exc.status_code, str(detail or "HTTP error"), None,
                              _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"))
    response.headers.update(exc.headers or {})  # a 405's Allow
    return response


async def backend_error_handler(request: Request, exc: Exception) -> Response:
    down = backend_unavailable(exc)
    if down is None:
        raise exc  # not an outage: the request middleware's error boundary masks and logs it
    log.warning("backend unavailable", extra={"path": request.url.path, "error": str(exc)[:300]})
    return JSON(down.to_dict(), status_code=down.status)


EXCEPTION_HANDLERS = {
    ServiceError: service_error_handler,
    HTTPException: http_error_handler,
    SearchConnectionError: backend_error_handler,
    SearchNotFound: backend_error_handler,  # a lost index is an outage; any other 404 stays a masked 500
    PyMongoError: backend_error_handler,
}


def handler_for(exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
    """The handler of EXCEPTION_HANDLERS for `exc` (its class's, else its nearest base's), as Starlette looks one up."""
    for cls in type(exc).__mro__:
        if (handler := EXCEPTION_HANDLERS.get(cls)) is not None:
            return handler
    return None
