"""Types shared by every domain: the paginated list."""

from __future__ import annotations

from typing import Generic, TypeVar

import strawberry

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
