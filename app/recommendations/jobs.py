"""Recommendations the service makes by itself: when an incident is opened (severity in
`recommendation_auto_severities`) and, debounced, when an open incident learns more (a root cause,
Analysis events). Recorded as outbox jobs in the writing transaction (app/indexing/outbox.py, kind
`recommendations`), run by a worker as the `recommendation-bot` user: the types by default, at most
`recommendation_auto_max`, replacing the ones not applied (applied ones are kept)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from app.backends import Backends
from app.incidents.models import RESOLVED_STATUSES
from app.indexing import outbox
from app.recommendations import service
from app.recommendations.models import GenerateRequest
from app.users import service as users
from app.users.models import Classification, Role, UserCreate

log = logging.getLogger(__name__)
KIND = "recommendations"
BOT_USERNAME = "recommendation-bot"


async def record_opened(bk: Backends, incident: Mapping[str, Any], *, session) -> bool:
    """In the transaction that opens `incident`: record the job when its severity calls for it."""
    if incident.get("severity") in bk.settings.recommendation_auto_severities \
            and incident.get("status") not in RESOLVED_STATUSES:
        await outbox.record(bk, KIND, incident["_id"], session=session)
        return True
    return False


async def record_learned(bk: Backends, incident: Mapping[str, Any], *, session=None) -> None:
    """An open incident learned more: refresh its recommendations after the debounce (writes meanwhile
    push it back and coalesce into one run)."""
    if incident.get("status") not in RESOLVED_STATUSES:
        await outbox.record(bk, KIND, incident["_id"], session=session,
                            delay=bk.settings.recommendation_refresh_debounce_seconds)


async def refresh(bk: Backends, incident_ids: list[str]) -> None:
    """The job: regenerate each open incident's recommendations."""
    bot = await users.ensure_user(bk, data=UserCreate(username=BOT_USERNAME, role=Role.ADMIN,
                                                      clearance=Classification.RESTRICTED))
    found = await bk.mongo.incidents.find({"_id": {"$in": incident_ids}}, {"status": 1}).to_list(None)
    for doc in found:
        if doc.get("status") in RESOLVED_STATUSES:
            continue
        recs = await service.generate_for_incident(bk, user=bot, data=GenerateRequest(
            incident_id=doc["_id"], max_recommendations=bk.settings.recommendation_auto_max, force=True))
        log.info("recommendations refreshed", extra={"incident": doc["_id"], "count": len(recs)})
