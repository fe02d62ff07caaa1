"""REST routes under /api/knowledge/postmortems/ — parse, call the service, shape the output."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http.auth import current_user
from app.http.responses import JSON, read_body
from app.listing import Page, drf_response
from app.postmortems import drafting, service
from app.postmortems.models import ActionItemUpdate, GenerateRequest, PostmortemContent, PostmortemCreate, PostmortemUpdate
from app.timefmt import isoz
from app.users import service as users

BASE = "/api/knowledge/postmortems/"
LIST_FIELDS = ("id", "title", "incident", "incident_title", "status", "severity", "owner_username",
               "completion_percentage", "is_overdue", "created_at", "due_date")
TEXT = ("title", "incident", "executive_summary", "root_cause_analysis", "impact_assessment", "lessons_learned",
        "is_automated", "generation_confidence", "status", "severity", "owner", "approver", "data_classification")
LISTS = ("timeline", "auto_generated_sections", "reviewers", "related_incidents",
         "affected_services", "affected_teams")
DATES = ("created_at", "updated_at", "published_at", "due_date")


async def serialize(request: Request, docs: list[dict], *, summary: bool = False) -> list[dict[str, Any]]:
    """The documented detail shape (or the list's summary), with usernames and incident titles
    fetched in one query each for the whole page."""
    bk, user = request.app.state.backends, current_user(request)
    ids = {p for d in docs for p in [d.get("owner"), d.get("approver"), *(d.get("reviewers") or [])] if p}
    people = await users.users_by_ids(bk, ids=list(ids)) if ids else {}
    titles = await service.incident_titles(bk, ids=[d["incident"] for d in docs], user=user) if docs else {}
    now = service.utcnow()
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"]}
        item.update({k: d.get(k) for k in TEXT})
        item.update({k: list(d.get(k) or []) for k in LISTS})
        item.update({k: isoz(d.get(k)) for k in DATES})
        item["action_items"] = service.public_action_items(d)
        item["knowledge_article"] = d.get("knowledge_article")
        item["incident_title"] = titles.get(d["incident"])
        item["owner_username"] = people[d["owner"]].username if d.get("owner") in people else None
        item["approver_username"] = people[d["approver"]].username if d.get("approver") in people else None
        item["reviewer_usernames"] = [people[r].username for r in d.get("reviewers") or [] if r in people]
        item["completion_percentage"] = service.completion_percentage(d)
        item["is_overdue"] = service.is_overdue(d, now)
        out.append({k: item[k] for k in LIST_FIELDS} if summary else item)
    return out


async def _page(request: Request, page: Page) -> JSON:
    return JSON(drf_response(str(request.url), page, await serialize(request, page.items, summary=True)))


async def list_or_create(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    if request.method == "POST":
        doc = await service.create_postmortem(bk, data=await read_body(request, PostmortemCreate), user=user)
        return JSON((await serialize(request, [doc]))[0], status_code=201)
    return await _page(request, await service.list_postmortems(bk, params=request.query_params, user=user))


async def detail(request: Request) -> Response:
    bk, user, pm_id = request.app.state.backends, current_user(request), request.path_params["id"]
    if request.method == "GET":
        doc = await service.get_postmortem(bk, pm_id=pm_id, user=user)
    elif request.method == "DELETE":
        await service.delete_postmortem(bk, pm_id=pm_id, user=user)
        return Response(status_code=204)
    else:
        replace = request.method == "PUT"
        data = await read_body(request, PostmortemContent if replace else PostmortemUpdate)
        doc = await service.update_postmortem(bk, pm_id=pm_id, data=data, user=user, replace=replace)
    return JSON((await serialize(request, [doc]))[0])


def _action(action: str):
    async def endpoint(request: Request) -> JSON:
        doc = await service.transition(request.app.state.backends, pm_id=request.path_params["id"], action=action,
                                       user=current_user(request))
        return JSON((await serialize(request, [doc]))[0])
    return endpoint


async def action_item(request: Request) -> JSON:
    """PATCH one action item (editor)."""
    bk, user = request.app.state.backends, current_user(request)
    doc = await service.update_action_item(bk, pm_id=request.path_params["id"], item_id=request.path_params["item_id"],
                                           data=await read_body(request, ActionItemUpdate), user=user)
    return JSON((await serialize(request, [doc]))[0])


async def overdue(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    return await _page(request, await service.list_postmortems(bk, params=request.query_params, user=user,
                                                               overdue=True))


async def statistics(request: Request) -> JSON:
    return JSON(await service.statistics(request.app.state.backends, user=current_user(request)))


async def generate_automated(request: Request) -> JSON:
    """Draft the sections from the incident data (editor; optional body `{"force": bool}`)."""
    body = await read_body(request, GenerateRequest)
    doc = await drafting.generate_automated(request.app.state.backends, pm_id=request.path_params["id"],
                                            user=current_user(request), force=body.force)
    return JSON({"message": "Postmortem generated successfully", "confidence_score": doc["generation_confidence"]})


routes = [
    Route(BASE, list_or_create, methods=["GET", "POST"]),
    Route(BASE + "overdue/", overdue, methods=["GET"]),
    Route(BASE + "statistics/", statistics, methods=["GET"]),
    Route(BASE + "{id}/", detail, methods=["GET", "PUT", "PATCH", "DELETE"]),
    Route(BASE + "{id}/approve/", _action("approve"), methods=["POST"]),
    Route(BASE + "{id}/publish/", _action("publish"), methods=["POST"]),
    Route(BASE + "{id}/submit_for_review/", _action("submit_for_review"), methods=["POST"]),
    Route(BASE + "{id}/request_changes/", _action("request_changes"), methods=["POST"]),
    Route(BASE + "{id}/archive/", _action("archive"), methods=["POST"]),
    Route(BASE + "{id}/action_items/{item_id}/", action_item, methods=["PATCH"]),
    Route(BASE + "{id}/generate_automated/", generate_automated, methods=["POST"]),
]

