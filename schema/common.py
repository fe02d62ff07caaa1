"""Types shared by every domain: the paginated list and the DateTime scalar."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from enum import Enum
from typing import Any, Callable, Generic, TypeVar

import strawberry
from pydantic import ValidationError as PydanticValidationError

from app.errors import ValidationFailed, pydantic_details
from app.listing import Page
from app.timefmt import for_body, isoz
from app.users.models import Classification

T = TypeVar("T")

ClassificationEnum = strawberry.enum(Classification, name="DataClassification")

# Types of two modules that refer to each other (`Incident.recommendations` returns recommendations, whose
# module builds on schema/incidents.py) name the other type lazily in annotations (`strawberry.lazy`) and
# make its objects by name, with the constructor its own module registered here: no module imports up.
_BUILDERS: dict[str, Callable[[dict], Any]] = {}


def builds(cls: type) -> type:
    """Class decorator (outermost): `build(cls.__name__, doc)` makes a `cls` with `cls.from_doc(doc)`."""
    _BUILDERS[cls.__name__] = cls.from_doc
    return cls


def build(type_name: str, doc: dict) -> Any:
    """An object of the GraphQL type `type_name` from its document (the type's module is imported by the
    schema, so its constructor is registered before any resolver runs)."""
    return _BUILDERS[type_name](doc)


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    return datetime.fromisoformat(value)  # any offset; the input models convert to UTC


# Every datetime in the schema: UTC with a `Z`, exactly as REST writes it (`2026-11-23T09:04:12.084000Z`), by the
# same writer: a page's timestamps are left to the body's JSON writer (`for_body`), as REST's are.
UtcDateTime = strawberry.scalar(datetime, name="DateTime", serialize=for_body, parse_value=_parse_datetime,
                                description="An ISO 8601 date and time. Output is always UTC with a `Z` "
                                            "(`2026-11-23T09:04:12.084000Z`); input may carry any offset.")


@strawberry.type
class Paginated(Generic[T]):
    total_count: int
    page: int
    page_size: int
    has_next_page: bool
    has_previous_page: bool
    results: list[T]


def paginated(page: Page, convert) -> Paginated:
    return Paginated(total_count=page.count, page=page.page, page_size=page.page_size, has_next_page=page.has_next,
                     has_previous_page=page.has_previous, results=[convert(d) for d in page.items])


def plain(value: Any) -> Any:
    """Strawberry input objects to plain dicts and lists; UNSET fields are left out."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if getattr(value, f.name) is not strawberry.UNSET}
    return value


_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def camel_keys(value: Any) -> Any:
    """A JSON output as GraphQL spells it: every snake_case key camelCased, at any depth (`most_applied` →
    `mostApplied`); keys that are values (`ROOT_CAUSE`, a category, a week) are left as they are; datetimes
    as ISO 8601 in UTC. For the service's own structures only, never a caller's free-form JSON."""
    if isinstance(value, dict):
        return {(_camel(k) if isinstance(k, str) and _SNAKE.match(k) else k): camel_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [camel_keys(v) for v in value]
    if isinstance(value, datetime):
        return isoz(value)
    return value


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part.capitalize() for part in rest)


def list_params(**kw: Any) -> dict[str, Any]:
    """GraphQL list arguments as the list helper's parameters: the ones not given (None, []) left out."""
    return {k: v for k, v in kw.items() if v is not None and v != []}


def validate(model, value: Any):
    """Validate GraphQL input with the same pydantic model REST uses (one set of rules)."""
    try:
        return model.model_validate(plain(value))
    except PydanticValidationError as exc:
        raise ValidationFailed("Invalid input", pydantic_details(exc)) from None
