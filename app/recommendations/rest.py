"""REST routes under /api/knowledge/recommendations/ — parse, call the service, shape the output."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from app.http.auth import current_user
from app.http.responses import JSON, documented, int_param, read_body
from app.listing import drf_response
from app.recommendations import service
from app.recommendations.models import GenerateRequest, RateRequest
from app.timefmt import drf_duration
from app.users import service as users

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


async def list_recommendations(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    page = await service.list_recommendations(bk, params=request.query_params, user=user)
    return JSON(drf_response(str(request.url), page, await serialize(request, page.items)))


async def detail(request: Request) -> JSON:
    doc = await service.get_recommendation(request.app.state.backends, rec_id=request.path_params["id"],
                                           user=current_user(request))
    return JSON((await serialize(request, [doc]))[0])


async def generate_for_incident(request: Request) -> JSON:
    """The documented body and response (`recommendations`: id, title, type, confidence_score, similarity_score)."""
    bk, user = request.app.state.backends, current_user(request)
    docs = await service.generate_for_incident(bk, data=await read_body(request, GenerateRequest), user=user)
    return JSON({"message": "Recommendations generated successfully",
                 "recommendations": [{"id": d["_id"], "title": d["title"], "type": d["recommendation_type"],
                                      "confidence_score": d["confidence_score"],
                                      "similarity_score": d["similarity_score"]} for d in docs]})


async def apply(request: Request) -> JSON:
    doc = await service.apply(request.app.state.backends, rec_id=request.path_params["id"], user=current_user(request))
    return JSON((await serialize(request, [doc]))[0])


async def rate_effectiveness(request: Request) -> JSON:
    doc = await service.rate(request.app.state.backends, rec_id=request.path_params["id"],
                             data=await read_body(request, RateRequest), user=current_user(request))
    return JSON((await serialize(request, [doc]))[0])


async def statistics(request: Request) -> JSON:
    weeks = int_param(request, "weeks", default=12, low=1, high=104)
    return JSON(await service.statistics(request.app.state.backends, user=current_user(request), weeks=weeks))


routes = [
    Route(BASE, list_recommendations, methods=["GET"]),
    Route(BASE + "generate_for_incident/", generate_for_incident, methods=["POST"]),
    Route(BASE + "statistics/", statistics, methods=["GET"]),
    Route(BASE + "{id}/", detail, methods=["GET"]),
    Route(BASE + "{id}/apply/", apply, methods=["POST"]),
    Route(BASE + "{id}/rate_effectiveness/", rate_effectiveness, methods=["POST"]),
]
