"""Typed errors for mutations, and error codes for everything else.

Expected failures of a mutation are returned as one of the error types below (each carries
`code`, `message` and `field`). Errors raised while resolving queries carry `extensions.code`;
anything unexpected is masked to "Unexpected error." and logged with the request id."""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any, Awaitable, Callable, Union

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.scalars import JSON

from app.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, ServiceError, backend_unavailable
from app.logs import request_id_var
from app.permissions import Rule, permit
from app.users.models import Role

log = logging.getLogger(__name__)


@strawberry.interface
class UserError:
    code: str
    message: str
    field: str | None = None
    details: JSON | None = None


@strawberry.type
class ValidationError(UserError):
    pass


@strawberry.type
class NotFoundError(UserError):
    pass


@strawberry.type
class ConflictError(UserError):
    pass


@strawberry.type
class PermissionDeniedError(UserError):
    pass


MUTATION_ERRORS = (ValidationError, NotFoundError, ConflictError, PermissionDeniedError)


def result(name: str, payload: type, *errors: type) -> Any:
    """The GraphQL result union `name` of a mutation: its payload, or one of its typed errors (the four of
    MUTATION_ERRORS unless named)."""
    return Annotated[Union[(payload, *(errors or MUTATION_ERRORS))], strawberry.union(name)]


_ERROR_CLASSES = ((NotFound, NotFoundError), (Conflict, ConflictError), (PermissionDenied, PermissionDeniedError),
                  (NotAuthenticated, PermissionDeniedError))


def user_error(exc: ServiceError) -> UserError:
    cls = next((c for t, c in _ERROR_CLASSES if isinstance(exc, t)), ValidationError)
    field = exc.field
    if field is None and isinstance(exc.details, dict) and isinstance(exc.details.get("field"), str):
        field = exc.details["field"]
    if field is None and isinstance(exc.details, list) and exc.details and isinstance(exc.details[0], dict):
        field = exc.details[0].get("field")
    return cls(code=exc.code, message=exc.error, field=field, details=exc.details)


def typed_errors(resolver: Callable[..., Awaitable[Any]] | None = None, *, role: Rule | Role | None = None):
    """The mutation wrapper (`@typed_errors`, or `@typed_errors(role=Role.EDITOR)`): an expected failure (a
    ServiceError) is returned as its typed error. `role` declares who may call the mutation (app/permissions.py):
    the guard every root field has (schema/permissions.py) checks it before the resolver runs — before its input
    is validated, so nothing about the input is answered to someone who may not call it."""
    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ServiceError as exc:
                return user_error(exc)

        return permit(role)(wrapper) if role is not None else wrapper

    return wrap(resolver) if resolver is not None else wrap


class ErrorCodes(MaskErrors):
    """Adds extensions.code to every error and masks the unexpected ones."""

    def _process_result(self, result: object) -> None:
        # MaskErrors asks `isinstance(result, <a runtime-checkable Protocol>)`, which costs tens of µs on every
        # operation; an attribute read answers the same question
        if errors := getattr(result, "errors", None):
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out = []
        for err in errors:
            original = err.original_error
            if original is not None and (down := backend_unavailable(original)) is not None:
                original = down
            if isinstance(original, ServiceError):
                ext = {"code": original.code}
                if original.details is not None:
                    ext["details"] = original.details
                out.append(GraphQLError(original.error, nodes=err.nodes, source=err.source, positions=err.positions,
                                        path=err.path, extensions=ext))
            elif original is None or isinstance(original, GraphQLError):
                ext = dict(err.extensions or {})
                ext.setdefault("code", "GRAPHQL_VALIDATION_FAILED" if err.path is None else "BAD_USER_INPUT")
                out.append(GraphQLError(err.message, nodes=err.nodes, source=err.source, positions=err.positions,
                                        path=err.path, extensions=ext))
            else:
                log.error("unexpected GraphQL error", exc_info=original)
                out.append(GraphQLError("Unexpected error.", nodes=err.nodes, source=err.source,
                                        positions=err.positions, path=err.path,
                                        extensions={"code": "INTERNAL_ERROR", "request_id": request_id_var.get()}))
        return out
