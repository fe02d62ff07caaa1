"""Usage events and the audit log, shared by every domain.

Usage events (`usage_events`) record what people do with knowledge — views, searches (query and
result count), ratings, bookmarks — for analytics. Each event also records the actor's clearance and
role at that moment, so figures can be limited to the events of people who could see no more than
the reader of the figures (see app/articles/service.usage_scope). The audit log (`audit_log`)
records who created, changed or deleted what, and when, for compliance. Recording never fails the
caller's request.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.backends import Backends
from app.timefmt import utcnow
from app.users.models import User

log = logging.getLogger(__name__)


async def record_usage(bk: Backends, *, kind: str, user: User, subject: str | None = None,
                       **data: Any) -> str:
    """Record one usage event (`kind` like "article.view", "article.search"), with the actor's
    clearance and role as they are now; returns its id."""
    event_id = str(uuid.uuid4())
    try:
        await bk.mongo.usage_events.insert_one({**data, "_id": event_id, "kind": kind, "user_id": user.id,
                                                "clearance": user.clearance.value, "role": user.role.value,
                                                "subject": subject, "at": utcnow()})
    except Exception as exc:  # noqa: BLE001 - analytics must not break the request
        log.warning("usage event not recorded", extra={"kind": kind, "error": str(exc)[:200]})
    return event_id


async def record_audit(bk: Backends, *, action: str, user: User, subject_type: str, subject_id: str,
                       changes: dict[str, Any] | None = None, session=None) -> None:
    """Record who did what to which object (inside the caller's transaction when given one)."""
    await bk.mongo.audit_log.insert_one({"_id": str(uuid.uuid4()), "action": action, "subject_type": subject_type,
                                         "subject_id": subject_id, "user_id": user.id, "username": user.username,
                                         "at": utcnow(), "changes": changes or {}}, session=session)
