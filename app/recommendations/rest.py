"""REST routes under /api/knowledge/recommendations/: the resource's declaration (app/http/resources.py), its
operations (call the service) and its serializer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from app.http.resources import Call, Op, Resource
from app.http.responses import documented, int_param
from app.listing import Page
from app.recommendations import service, stats
from app.recommendations.models import GenerateRequest, RateRequest
from app.timefmt import drf_duration
from app.users import service as users
from app.users.models import Role

BASE = "/api/knowledge/recommendations/"
FIELDS = ("incident", "recommendation_type", "title", "description", "similarity_score", "confidence_level",
          "confidence_score", "related_incident", "knowledge_article", "suggested_expert", "expected_outcome",
          "is_applied", "applied_by", "effectiveness_rating", "reasoning", "model_version", "data_classification",
          "learning_pattern")
LISTS = ("suggested_actions", "matching_factors")
DATES = ("applied_at", "created_at", "updated_at")


async def serialize(request: Request, docs: list[dict]) -> list[dict[str, Any]]:
    """The documented IncidentRecommendation; usernames of the expert and the person who applied it."""
    bk = request.app.state.backends
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
    return await service.list_recommendations(call.bk, params=call.params, user=call.user)


async def detail(call: Call) -> dict:
    return await call.one(await service.get_recommendation(call.bk, rec_id=call.key, user=call.user))


async def generate_for_incident(call: Call) -> dict:
    """The documented body and response (`recommendations`: id, title, type, confidence_score, similarity_score)."""
    done = await service.generate(call.bk, data=call.body, user=call.user)
    return {"message": done.message(call.body.min_confidence),
            "recommendations": [{"id": d["_id"], "title": d["title"], "type": d["recommendation_type"],
                                 "confidence_score": d["confidence_score"],
                                 "similarity_score": d["similarity_score"]} for d in done.recommendations],
            "withheld": {"count": done.withheld, "best": done.best_withheld}}


async def apply(call: Call) -> dict:
    return await call.one(await service.apply(call.bk, rec_id=call.key, user=call.user))


async def rate_effectiveness(call: Call) -> dict:
    return await call.one(await service.rate(call.bk, rec_id=call.key, data=call.body, user=call.user))


async def statistics(call: Call) -> dict:
    weeks = int_param(call.request, "weeks", default=12, low=1, high=104)
    return await stats.statistics(call.bk, user=call.user, weeks=weeks)


RESOURCE = Resource(
    base=BASE.rstrip("/"), serialize=serialize,
    collection={"GET": Op(list_recommendations)},
    views={"generate_for_incident": {"POST": Op(generate_for_incident, Role.EDITOR, GenerateRequest)},
           "statistics": {"GET": Op(statistics)}},
    item={"GET": Op(detail)},
    actions={"apply": {"POST": Op(apply)}, "rate_effectiveness": {"POST": Op(rate_effectiveness, body=RateRequest)}})
routes = RESOURCE.routes()
