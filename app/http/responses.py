"""JSON responses, request bodies and the error handlers shared by every REST route."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, TypeVar

from opensearchpy.exceptions import ConnectionError as SearchConnectionError
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import ServiceError, ValidationFailed, backend_unavailable, pydantic_details
from app.timefmt import isoz

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1_048_576


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoz(value)
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_default, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status: int, error: str, details: Any = None, code: str = "ERROR") -> JSON:
    return JSON({"error": error, "details": details, "code": code}, status_code=status)


async def read_body(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body: malformed JSON, unknown fields and wrong types are 400s."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationFailed("Request body too large", {"max_bytes": MAX_BODY_BYTES}, code="BODY_TOO_LARGE")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("Malformed JSON in request body", str(exc), code="MALFORMED_JSON") from None
    if not isinstance(data, dict):
        raise ValidationFailed("Request body must be a JSON object", code="INVALID_BODY")
    try:
        return model.model_validate(data)
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
    return error_response(exc.status_code, str(detail or "HTTP error"), None,
                          _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"))


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
    PyMongoError: backend_error_handler,
}
