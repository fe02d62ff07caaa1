"""Recommendations for an incident: every rule about them lives here (the scoring is app/recommendations/engine.py).

`generate_for_incident` gathers the evidence as the requester sees it (app/recommendations/evidence.py:
similar past incidents, their postmortems, the articles the incident's text ranks and those the most similar
incidents used, the people who worked on similar incidents, the ratings earlier recommendations of the same
targets received) and scores it (engine.py), keeps those at or above
`min_confidence`, and stores at most `max_recommendations`, the types taking turns best first.

One recommendation per (incident, type, target): generating again refreshes the ones neither applied nor
rated in place (no duplicates); `force` replaces every one neither applied nor rated. Applied and rated
ones are history and never touched: their ratings feed every later incident and the calibration.
A recommendation's `data_classification` is the most secret of its incident's and its sources', so a
reader sees it only when they could see everything it names; a hidden one is answered like a missing one.

Applying and rating (`apply`, `rate`) are for editors and admins, and for a viewer who is one of the
incident's people: its assignee or reporter (usernames) or who created it (`may_act`). Anyone else gets a
403 and nothing changes — not the recommendation, not the ratings that rank later ones, not the audit log.
A recommendation the caller cannot see is a 404 first, whoever asks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from pymongo import ReturnDocument, UpdateOne

from app import classification
from app.activity.service import record_audit
from app.backends import Backends
from app.errors import PermissionDenied, ValidationFailed
from app.incidents import service as incidents
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.permissions import Rule
from app.recommendations import engine, evidence
from app.recommendations.models import (ConfidenceLevel, RateRequest, RecommendationGenerateRequest,
                                        RecommendationType, level_for)
from app.timefmt import utcnow
from app.users.models import Role, User, require_role
from app.webhooks import events as webhook_events

T = RecommendationType

LIST_SPEC = ListSpec(
    collection="recommendations",
    filters=(Filter("recommendation_type", "recommendation_type", RecommendationType),
             Filter("confidence_level", "confidence_level", ConfidenceLevel), Filter("is_applied", "is_applied", bool),
             Filter("incident", "incident", description="The incident: its name or its id", indexed=True)),
    search_fields=("title", "description", "reasoning"),
    ordering={"created_at": "created_at", "confidence_score": "confidence_score",
              "similarity_score": "similarity_score", "updated_at": "updated_at"},
    default_ordering=("-confidence_score",),
)


RECOMMENDATIONS = Repository("Recommendation", "RECOMMENDATION_NOT_FOUND", LIST_SPEC)


# --- reading --------------------------------------------------------------------------------------

async def get_recommendation(bk: Backends, *, rec_id: str, user: User) -> dict:
    return await RECOMMENDATIONS.get(bk, rec_id, user)


async def list_recommendations(bk: Backends, *, params: Mapping[str, Any], user: User) -> Page:
    """`?incident=` takes the incident's name or id."""
    return await RECOMMENDATIONS.page(bk, await incidents.incident_filter_param(bk, params, user=user), user)


MAX_PER_INCIDENT = 50


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PER_INCIDENT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PER_INCIDENT}", {"field": "limit"})
    return limit


async def for_incidents(bk: Backends, *, incident_ids: list[str], user: User, limit: int) -> dict[str, list[dict]]:
    """Each incident's recommendations the user may see, most confident first, at most `limit` each; one query."""
    rows = await (await bk.mongo.recommendations.aggregate([
        {"$match": {"incident": {"$in": list(set(incident_ids))}, **classification.mongo_filter(user)}},
        {"$sort": {"incident": 1, "confidence_score": -1, "_id": 1}},
        {"$group": {"_id": "$incident", "docs": {"$push": "$$ROOT"}}},
        {"$project": {"docs": {"$slice": ["$docs", limit]}}},
    ])).to_list(None)
    return {r["_id"]: r["docs"] for r in rows}


def _pick(candidates: list[dict], *, limit: int, min_confidence: float) -> list[dict]:
    """At most `limit`, the types taking turns, each type's best first. A postmortem summary of incidents the
    list already recommends (as a similar incident or a solution) is left out: that item names the incident
    and its summary says nothing more, so the place goes to the next item."""
    queues: dict[str, list[dict]] = {}
    for c in sorted(candidates, key=lambda c: (-c["confidence_score"], c.get("sort_key") or "", str(c["target"]))):
        if c["confidence_score"] >= min_confidence:
            queues.setdefault(c["recommendation_type"], []).append(c)
    picked: list[dict] = []
    while True:
        while len(picked) < limit and any(queues.values()):
            for queue in queues.values():
                if queue and len(picked) < limit:
                    picked.append(queue.pop(0))
        named = {c.get("related_incident") for c in picked} - {None}
        kept = [c for c in picked if not evidence.summary_of(c, named)]
        if len(kept) == len(picked):
            return picked
        picked = kept


# --- writing --------------------------------------------------------------------------------------

@dataclass
class Generated:
    """What a generation stored (`recommendations`, best first), and what it held back: how many candidates
    scored below `min_confidence` and the best of them (type, title, confidence), so an empty answer says
    how far the evidence fell short instead of looking like success."""

    recommendations: list[dict]
    withheld: int = 0
    best_withheld: list[dict] = field(default_factory=list)

    def message(self, min_confidence: float) -> str:
        if self.recommendations:
            return "Recommendations generated successfully"
        if not self.withheld:
            return "No recommendation: nothing the incident resembles was found to recommend from"
        best = self.best_withheld[0]
        return (f"No recommendation reached min_confidence {min_confidence:g}: the strongest evidence was "
                f"{best['confidence_score']:.2f} ({best['type']}: {best['title']}); lower min_confidence to see it")


WITHHELD_SHOWN = 3


async def generate_for_incident(bk: Backends, *, data: RecommendationGenerateRequest, user: User) -> list[dict]:
    """Score, keep and store recommendations for an incident the user may see (editor). Returns them, best first."""
    return (await generate(bk, data=data, user=user)).recommendations


async def generate(bk: Backends, *, data: RecommendationGenerateRequest, user: User) -> Generated:
    """`generate_for_incident`, with what it held back below `min_confidence` (`Generated`)."""
    require_role(user, Role.EDITOR)
    incident = await incidents.referenced_incident(bk, incident_id=data.incident_id, user=user, field="incident_id",
                                                   projection=None)
    types = list(data.recommendation_types)
    candidates = await evidence.candidates(bk, incident, types, user, data.max_recommendations)
    # applied or rated ones are history: never rewritten or replaced (ratings feed every later incident), so
    # they compete with the confidence they were offered at, which is what the list and the response show
    settled = {"incident": incident["_id"], "$or": [{"is_applied": True}, {"effectiveness_rating": {"$ne": None}}]}
    offered_at = {(d["recommendation_type"], d["target"]): d["confidence_score"] async for d in
                  bk.mongo.recommendations.find(settled, {"recommendation_type": 1, "target": 1, "confidence_score": 1})}
    for c in candidates:
        c["confidence_score"] = offered_at.get((c["recommendation_type"], c["target"]), c["confidence_score"])
    picked = _pick(candidates, limit=data.max_recommendations, min_confidence=data.min_confidence)
    below = sorted((c for c in candidates if c["confidence_score"] < data.min_confidence),
                   key=lambda c: (-c["confidence_score"], c.get("sort_key") or "", str(c["target"])))
    held = Generated([], withheld=len(below), best_withheld=[
        {"type": c["recommendation_type"], "title": c["title"], "confidence_score": c["confidence_score"]}
        for c in below[:WITHHELD_SHOWN]])
    now = utcnow()
    ops = []
    for c in picked:
        if (c["recommendation_type"], c["target"]) in offered_at:
            continue
        sources = c.pop("sources")
        fields = {**{k: c.get(k) for k in ("title", "description", "similarity_score", "confidence_score", "raw_score",
                                           "reasoning", "matching_factors", "related_incident", "knowledge_article",
                                           "suggested_expert", "suggested_actions", "expected_outcome",
                                           "time_to_implement", "learning_pattern", "confidence_features")},
                  "confidence_level": level_for(c["confidence_score"]).value, "model_version": engine.MODEL_VERSION,
                  "data_classification": classification.most_secret([incident, *sources]), "updated_at": now}
        ops.append(UpdateOne(
            {"incident": incident["_id"], "recommendation_type": c["recommendation_type"], "target": c["target"]},
            {"$set": fields, "$setOnInsert": {"_id": str(uuid.uuid4()), "created_at": now, "is_applied": False,
                                              "applied_at": None, "applied_by": None, "effectiveness_rating": None,
                                              "created_by": user.id}},
            upsert=True))

    async def op(s):
        if data.force:  # replace every recommendation of these types neither applied nor rated
            await bk.mongo.recommendations.delete_many(
                {"incident": incident["_id"], "is_applied": False, "effectiveness_rating": None,
                 "recommendation_type": {"$in": [t.value for t in types]}}, session=s)
        if ops:
            written = await bk.mongo.recommendations.bulk_write(ops, ordered=False, session=s)
            if new := list(written.upserted_ids.values()):  # the new ones are announced to webhooks
                await webhook_events.announce_each(bk, "recommendation.generated", await bk.mongo.recommendations.find(
                    {"_id": {"$in": new}}, session=s).to_list(None), session=s)
        await record_audit(bk, action="generate_recommendations", user=user, subject_type="incident",
                           subject_id=incident["_id"], changes={"types": [t.value for t in types],
                                                                "stored": len(ops), "force": data.force}, session=s)

    await bk.transaction(op)
    keys = [{"recommendation_type": c["recommendation_type"], "target": c["target"]} for c in picked]
    if not keys:
        return held
    docs = await bk.mongo.recommendations.find({"incident": incident["_id"], "$or": keys,
                                                **classification.mongo_filter(user)}).to_list(None)
    order = {(c["recommendation_type"], c["target"]): i for i, c in enumerate(picked)}
    docs.sort(key=lambda d: (-d["confidence_score"], order.get((d["recommendation_type"], d["target"]), 0)))
    held.recommendations = docs
    return held


# Applying or rating a recommendation (app/permissions.py): the REST operations and GraphQL fields declare it.
ACT_RULE = Rule(ownership="a viewer only on an incident of theirs (its assignee, reporter or creator); editors and "
                          "admins on any they can see")


async def may_act(bk: Backends, *, rec: Mapping[str, Any], user: User) -> None:
    """403 unless the user may apply or rate `rec` (one they can see): an editor or admin, or one of its
    incident's people — the assignee, the reporter or who created it, on an incident they can see."""
    if user.has_role(Role.EDITOR):
        return
    incident = await incidents.INCIDENTS.find(bk, rec.get("incident"), user, by="_id",
                                              projection={**{f: 1 for f in evidence.INCIDENT_PEOPLE}, "created_by": 1})
    if incident is not None and (user.username in {incident.get(f) for f in evidence.INCIDENT_PEOPLE}
                                 or incident.get("created_by") == user.id):
        return
    raise PermissionDenied("Only an editor, an admin or one of the incident's people (its assignee or reporter) "
                           "may apply or rate its recommendations",
                           {"role": user.role.value, "required": "editor, or the incident's assignee or reporter"})


async def apply(bk: Backends, *, rec_id: str, user: User) -> dict:
    """Record that the user applied it (who and when; `may_act`); applying again changes nothing."""
    current = await get_recommendation(bk, rec_id=rec_id, user=user)
    await may_act(bk, rec=current, user=user)
    if current.get("is_applied"):
        return current
    now = utcnow()

    async def op(s):
        doc = await bk.mongo.recommendations.find_one_and_update(
            {"_id": rec_id, "is_applied": False}, {"$set": {"is_applied": True, "applied_at": now, "applied_by": user.id,
                                                            "updated_at": now}},
            session=s, return_document=ReturnDocument.AFTER)
        if doc is not None:
            await record_audit(bk, action="apply", user=user, subject_type="recommendation", subject_id=rec_id,
                               changes={"incident": current["incident"]}, session=s)
        return doc

    return await bk.transaction(op) or await get_recommendation(bk, rec_id=rec_id, user=user)


async def rate(bk: Backends, *, rec_id: str, data: RateRequest, user: User) -> dict:
    """Rate how well it worked (1-5; `may_act`): the latest rating is `effectiveness_rating`; each rating is kept."""
    current = await get_recommendation(bk, rec_id=rec_id, user=user)
    await may_act(bk, rec=current, user=user)
    now = utcnow()

    async def op(s):
        doc = await bk.mongo.recommendations.find_one_and_update(
            {"_id": rec_id}, {"$set": {"effectiveness_rating": data.rating, "rated_at": now, "rated_by": user.id,
                                       "updated_at": now},
                              "$push": {"ratings": {"$each": [{"user": user.id, "rating": data.rating, "at": now}],
                                                    "$slice": -100}}},
            session=s, return_document=ReturnDocument.AFTER)
        if doc is not None:
            await record_audit(bk, action="rate", user=user, subject_type="recommendation", subject_id=rec_id,
                               changes={"incident": current["incident"], "rating": data.rating}, session=s)
        return doc

    doc = await bk.transaction(op)
    if doc is None:
        raise RECOMMENDATIONS.not_found(rec_id)
    return doc
