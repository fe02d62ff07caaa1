"""Types shared by every domain: the paginated list."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from pydantic import ValidationError as PydanticValidationError

from app.errors import ValidationFailed, pydantic_details
from app.listing import Page

T = TypeVar("T")


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


def validate(model, value: Any):
    """Validate GraphQL input with the same pydantic model REST uses (one set of rules)."""
    try:
        return model.model_validate(plain(value))
    except PydanticValidationError as exc:
        raise ValidationFailed("Invalid input", pydantic_details(exc)) from None
