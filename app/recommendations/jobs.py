"""Recommendations the service makes by itself: when an incident is opened (severity in
`recommendation_auto_severities`) and, debounced, when an open incident learns more (a root cause,
Analysis events). Recorded as outbox jobs in the writing transaction (app/indexing/outbox.py, kind
`recommendations`), run by a worker as the `recommendation-bot` user: the types by default, at most
`recommendation_auto_max`, replacing the ones neither applied nor rated — with the clearance of the
incident's own classification, so nothing more secret takes the places its readers see. A validated learning pattern the
incident newly matches is also announced at once on its timeline (an Analysis event naming the pattern and
what worked before)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from app import classification
from app.backends import Backends
from app.incidents import hooks, service as incidents
from app.incidents.hooks import Happened
from app.incidents.models import RESOLVED_STATUSES, EventType, TimelineEventIn
from app.indexing import outbox
from app.recommendations import service
from app.recommendations.models import RecommendationGenerateRequest, RecommendationType
from app.users import service as users
from app.users.models import Classification

log = logging.getLogger(__name__)
KIND = "recommendations"
BOT_USERNAME = users.Bot.RECOMMENDATIONS.value
SOURCE = "learning-patterns"  # the timeline source of the events announcing a matched pattern


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


async def _opened(bk: Backends, incident: Mapping[str, Any], _prepared: Any, session) -> str | None:
    return incident["_id"] if await record_opened(bk, incident, session=session) else None


async def _learned(bk: Backends, incident: Mapping[str, Any], _prepared: Any, session) -> None:
    await record_learned(bk, incident, session=session)


async def _run_now(bk: Backends, incident_id: str) -> None:
    await bk.notify_index(KIND, incident_id)


# an incident opened at a configured severity gets recommendations at once; one that learned its cause
# while open gets them refreshed after the debounce
hooks.subscribe(Happened.OPENED, within=_opened, after_commit=_run_now)
hooks.subscribe(Happened.LEARNED, within=_learned)


@outbox.job_handler(KIND)
async def refresh(bk: Backends, incident_ids: list[str]) -> None:
    """The job: regenerate each open incident's recommendations."""
    bot = await users.bot(bk, users.Bot.RECOMMENDATIONS)
    found = await bk.mongo.incidents.find({"_id": {"$in": incident_ids}},
                                          {"status": 1, classification.FIELD: 1}).to_list(None)
    for doc in found:
        if doc.get("status") in RESOLVED_STATUSES:
            continue
        # as a reader of the incident's own level: nothing more secret takes the places its readers see
        reader = bot.model_copy(update={"clearance": Classification(
            doc.get(classification.FIELD, classification.DEFAULT.value))})
        recs = await service.generate_for_incident(bk, user=reader, data=RecommendationGenerateRequest(
            incident_id=doc["_id"], max_recommendations=bk.settings.recommendation_auto_max, force=True))
        log.info("recommendations refreshed", extra={"incident": doc["_id"], "count": len(recs)})
        await _announce_patterns(bk, doc, [r for r in recs if r["recommendation_type"]
                                          == RecommendationType.LEARNING_PATTERN.value], bot)


async def _announce_patterns(bk: Backends, incident: Mapping[str, Any], recs: list[dict], bot) -> None:
    """Tell the incident at once: an Analysis event naming each validated pattern it newly matches — only
    patterns no more secret than the incident (whoever reads its timeline may read them)."""
    level = incident.get(classification.FIELD, classification.DEFAULT.value)
    told = set(await bk.mongo.incidents.distinct("timeline.details.learning_pattern", {"_id": incident["_id"]}))
    recs = [r for r in recs if r.get("data_classification") == level and r["target"] not in told]
    if not recs:
        return
    events = [TimelineEventIn(type=EventType.ANALYSIS, source=SOURCE, message=(
        f"Matches validated learning pattern \"{r['title'].removeprefix('Learning Pattern: ')}\"; what worked before: "
        + ("; ".join(r.get("suggested_actions") or []) or "no actions recorded"))[:5000],
        details={"learning_pattern": r["target"], "recommendation": r["_id"], "actor": BOT_USERNAME,
                 "confidence": r["confidence_score"]}) for r in recs]
    name = (await bk.mongo.incidents.find_one({"_id": incident["_id"]}, {"name": 1}))["name"]
    await incidents.add_events(bk, name=name, events=events, user=bot)
