"""REST routes under /api/knowledge/recommendations/: the resource's declaration (app/http/resources.py), its
operations (call the service) and its serializer."""

from __future__ import annotations

from typing import Any


from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.inputs import Param
from app.http.responses import documented
from app.listing import Page
from app.recommendations import service, stats
from app.recommendations.models import RateRequest, RecommendationGenerateRequest
from app.recommendations.outputs import GeneratedRecommendations, IncidentRecommendation, RecommendationStatistics
from app.timefmt import drf_duration
from app.users import service as users
from app.users.models import Role, User

BASE = "/api/knowledge/recommendations/"
FIELDS = ("incident", "recommendation_type", "title", "description", "similarity_score", "confidence_level",
          "confidence_score", "related_incident", "knowledge_article", "suggested_expert", "expected_outcome",
          "is_applied", "applied_by", "effectiveness_rating", "reasoning", "model_version", "data_classification",
          "learning_pattern")
LISTS = ("suggested_actions", "matching_factors")
DATES = ("applied_at", "created_at", "updated_at")


async def serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict[str, Any]]:
    """The documented IncidentRecommendation; usernames of the expert and the person who applied it."""
    ids = {p for d in docs for p in (d.get("suggested_expert"), d.get("applied_by")) if p}
    people = await users.users_by_ids(bk, ids=list(ids)) if ids else {}
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **documented(d, fields=FIELDS, lists=LISTS, dates=DATES)}
        item["time_to_implement"] = drf_duration(d.get("time_to_implement"))
        item["suggested_expert_username"] = users.username(people, d.get("suggested_expert"))
        item["applied_by_username"] = users.username(people, d.get("applied_by"))
        out.append(item)
    return out


async def list_recommendations(call: Call) -> Page:
    """List the recommendations the caller may see (`?incident=` takes the incident's id or name)."""
    return await service.list_recommendations(call.bk, params=call.params, user=call.user)


async def detail(call: Call) -> dict:
    """Get a recommendation."""
    return await call.one(await service.get_recommendation(call.bk, rec_id=call.key, user=call.user))


async def generate_for_incident(call: Call) -> dict:
    """Generate recommendations for an incident.

    Gathers the evidence as the caller sees it (similar incidents, their fixes and postmortems, articles,
    the people who worked on similar incidents, validated learning patterns), keeps the candidates at or
    above `min_confidence` and stores at most `max_recommendations`, the types taking turns best first.
    Generating again refreshes those neither applied nor rated (`force`: replaces them). The documented
    response (`recommendations`: id, title, type, confidence_score, similarity_score), plus `withheld`:
    how many candidates fell below `min_confidence`, and the best of them."""
    done = await service.generate(call.bk, data=call.body, user=call.user)
    return {"message": done.message(call.body.min_confidence),
            "recommendations": [{"id": d["_id"], "title": d["title"], "type": d["recommendation_type"],
                                 "confidence_score": d["confidence_score"],
                                 "similarity_score": d["similarity_score"]} for d in done.recommendations],
            "withheld": {"count": done.withheld, "best": done.best_withheld}}


async def apply(call: Call) -> dict:
    """Record that the caller applied a recommendation (applying again changes nothing).

    For editors and admins, and for the incident's assignee, reporter or creator (403 for anyone else)."""
    return await call.one(await service.apply(call.bk, rec_id=call.key, user=call.user))


async def rate_effectiveness(call: Call) -> dict:
    """Rate how well a recommendation worked (1-5); the latest rating is its `effectiveness_rating`.

    For editors and admins, and for the incident's assignee, reporter or creator (403 for anyone else)."""
    return await call.one(await service.rate(call.bk, rec_id=call.key, data=call.body, user=call.user))


async def statistics(call: Call) -> dict:
    """Get recommendation statistics: counts by type and level, applied rate, effectiveness ratings."""
    return await stats.statistics(call.bk, user=call.user, weeks=call.arg("weeks"))


RESOURCE = Resource(
    base=BASE.rstrip("/"), serialize=serialize,
    collection={"GET": Op(list_recommendations, response=IncidentRecommendation, listing=service.LIST_SPEC)},
    views={"generate_for_incident": {"POST": Op(generate_for_incident, Role.EDITOR, RecommendationGenerateRequest,
                                                response=GeneratedRecommendations)},
           "statistics": {"GET": Op(statistics, response=RecommendationStatistics, query=(
               Param("weeks", int, "The weeks `feedback_over_time` covers", default=12, low=1, high=104),))}},
    item={"GET": Op(detail, response=IncidentRecommendation)},
    actions={"apply": {"POST": Op(apply, service.ACT_RULE, response=IncidentRecommendation, errors=(403,))},
             "rate_effectiveness": {"POST": Op(rate_effectiveness, service.ACT_RULE, RateRequest, response=IncidentRecommendation,
                                               errors=(403,))}})
RESOURCES = [RESOURCE]
