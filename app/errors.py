"""Errors every layer raises. REST renders them as {"error", "details", "code"}; GraphQL turns them
into typed results (mutations) or errors with extensions.code (queries)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, error: str, details: Any = None, *, code: str | None = None, field: str | None = None):
        super().__init__(error)
        self.error = error
        self.details = details
        self.field = field
        if code:
            self.code = code

    def summary(self) -> str:
        """One line for a job's record or a command's table: `404 NOT_FOUND: Incident 'x' not found`."""
        return f"{self.status} {self.code}: {self.error}"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "details": self.details, "code": self.code}


class ValidationFailed(ServiceError):
    status = 400
    code = "VALIDATION_ERROR"


class NotAuthenticated(ServiceError):
    status = 401
    code = "NOT_AUTHENTICATED"


class PermissionDenied(ServiceError):
    status = 403
    code = "PERMISSION_DENIED"


class NotFound(ServiceError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ServiceError):
    status = 409
    code = "CONFLICT"


class Internal(ServiceError):
    """Only ever built by the error boundary, with the request id: never a message from the code."""
    status = 500
    code = "INTERNAL_ERROR"


class Unavailable(ServiceError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


def pydantic_details(exc) -> list[dict[str, Any]]:
    """A pydantic ValidationError as a list of {field, message, type} a client can act on."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        out.append({"field": ".".join(str(p) for p in err["loc"]) or None, "message": err["msg"], "type": err["type"]})
    return out


def backend_unavailable(exc: BaseException) -> Unavailable | None:
    """A backend that is down becomes a 503 naming it, not a 500."""
    from opensearchpy.exceptions import ConnectionError as SearchConnectionError
    from opensearchpy.exceptions import ConnectionTimeout as SearchTimeout
    from opensearchpy.exceptions import NotFoundError as SearchNotFound
    from pymongo.errors import ConnectionFailure, PyMongoError

    if isinstance(exc, (SearchConnectionError, SearchTimeout)):
        return Unavailable("The search server is unavailable; try again shortly", code="SEARCH_UNAVAILABLE")
    if isinstance(exc, SearchNotFound) and "index_not_found" in str(exc):
        # the search server lost the index (a restart of an in-memory server, a new cluster): the
        # outbox sweep rebuilds it from MongoDB; until then searches cannot be answered
        return Unavailable("The search index is being rebuilt; try again shortly", code="SEARCH_UNAVAILABLE")
    if isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout):
        # down, or too slow to answer within the deadline (e.g. PyMongo refusing to send a commit that would
        # exceed it: `ExecutionTimeout`, nothing written)
        return Unavailable("The database is unavailable; try again shortly", code="DATABASE_UNAVAILABLE")
    return None
