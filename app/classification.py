"""Data classification, one rule for every domain.

Every document a reader can reach carries `data_classification` (PUBLIC < INTERNAL < CONFIDENTIAL <
RESTRICTED; INTERNAL when not given). A user sees a document only when it is at or below their
clearance — in lists, details, searches, counts and statistics alike — and a hidden document is
answered exactly like a missing one (404). Nobody may classify a document above their own clearance
(they could no longer see it, and it would leak through their own writes).
"""

from __future__ import annotations

from typing import Any

from app.errors import ValidationFailed
from app.users.models import Classification, User

FIELD = "data_classification"
DEFAULT = Classification.INTERNAL


def mongo_filter(user: User) -> dict[str, Any]:
    """The MongoDB filter for documents this user may see."""
    return {FIELD: {"$in": user.clearance.visible()}}


def search_filter(user: User) -> dict[str, Any]:
    """The same rule as an OpenSearch filter clause."""
    return {"terms": {FIELD: user.clearance.visible()}}


def most_secret(docs) -> str:
    """The classification of something built from `docs`: the most secret of theirs (INTERNAL for none)."""
    levels = [Classification(d.get(FIELD, DEFAULT.value)) for d in docs if d]
    return max(levels, key=lambda c: c.rank).value if levels else DEFAULT.value


def can_see(user: User, doc: dict[str, Any]) -> bool:
    return doc.get(FIELD, DEFAULT.value) in user.clearance.visible()


def check_may_classify(user: User, value: Classification | str | None, *, what: str) -> None:
    """A 400 when `value` is above the user's clearance."""
    if value is not None and Classification(value).rank > user.clearance.rank:
        raise ValidationFailed(f"You cannot classify {what} above your own clearance",
                               {"field": FIELD, "clearance": user.clearance.value})
