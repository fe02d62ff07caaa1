"""REST routes under /api/knowledge/postmortems/ — parse, call the service, shape the output."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app.http.auth import current_user
from app.http.responses import JSON, documented, json_default, read_body
from app.listing import Page, drf_response
from app.postmortems import drafting, generations, service
from app.postmortems.models import (ActionItemUpdate, GenerateRequest, GenerationRequest, PostmortemCreate,
                                    PostmortemReplace, PostmortemUpdate)
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
        item: dict[str, Any] = {"id": d["_id"], **documented(d, fields=TEXT, lists=LISTS, dates=DATES)}
        item["action_items"] = service.public_action_items(d)
        item["action_items_version"] = service.action_items_version(d.get("action_items"))
        item["knowledge_article"] = d.get("knowledge_article")
        item["incident_title"] = titles.get(d["incident"])
        item["owner_username"] = users.username(people, d.get("owner"))
        item["approver_username"] = users.username(people, d.get("approver"))
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
        data = await read_body(request, PostmortemReplace if replace else PostmortemUpdate)
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


# --- generation logs --------------------------------------------------------------------------------

GEN_BASE = "/api/knowledge/postmortem-generations/"
GEN_FIELDS = ("incident", "status", "generation_trigger", "include_timeline", "include_logs", "force",
              "postmortem_created", "confidence_score", "processing_time", "attempts", "model_version",
              "error_message", "review_reason", "data_classification")
GEN_LISTS = ("generated_sections", "kept_sections", "unsupported_facts", "errors")
GEN_DATES = ("created_at", "started_at", "completed_at", "updated_at")


async def serialize_generations(bk, user, docs: list[dict]) -> list[dict[str, Any]]:
    """A generation log as REST shows it: `generated_postmortem` is the postmortem's id, `processing_time`
    seconds; usernames and incident titles in one query each for the page."""
    people = await users.users_by_ids(bk, ids=[d["requested_by"] for d in docs if d.get("requested_by")]) if docs else {}
    titles = await service.incident_titles(bk, ids=[d["incident"] for d in docs], user=user) if docs else {}
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], "incident_title": titles.get(d["incident"]),
                                **documented(d, fields=GEN_FIELDS, lists=GEN_LISTS, dates=GEN_DATES)}
        item["generated_postmortem"] = d.get("postmortem")
        item["requested_by_username"] = users.username(people, d.get("requested_by"))
        item["evidence"] = d.get("evidence") or {}
        item["draft"] = d.get("draft")  # the draft kept for review when it failed the fact check
        out.append(item)
    return out


async def generation_list(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    page = await generations.list_generations(bk, params=request.query_params, user=user)
    return JSON(drf_response(str(request.url), page, await serialize_generations(bk, user, page.items)))


async def generation_detail(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    doc = await generations.get_generation(bk, gen_id=request.path_params["id"], user=user)
    return JSON((await serialize_generations(bk, user, [doc]))[0])


async def generate_postmortem(request: Request) -> JSON:
    """Start a generation (editor): 202 with the documented `{"message", "generation_id"}`; 200 with the
    running one's id when the incident already has a generation in progress."""
    bk, user = request.app.state.backends, current_user(request)
    doc, created = await generations.start(bk, data=await read_body(request, GenerationRequest), user=user)
    message = "Postmortem generation initiated" if created else "Postmortem generation already in progress"
    return JSON({"message": message, "generation_id": doc["_id"], "status": doc["status"]},
                status_code=202 if created else 200)


async def generation_retry(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    doc = await generations.retry(bk, gen_id=request.path_params["id"], user=user)
    return JSON({"message": "Postmortem generation restarted", "generation_id": doc["_id"], "status": doc["status"]},
                status_code=202)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=json_default, separators=(',', ':'))}\n\n".encode()


async def generation_events(request: Request) -> Response:
    """Server-Sent Events: the log now (`event: generation`), again after every change, a comment every
    keep-alive interval, and `event: end` once it is finished (then the stream closes)."""
    bk, user, gen_id = request.app.state.backends, current_user(request), request.path_params["id"]
    await generations.get_generation(bk, gen_id=gen_id, user=user)  # a 404 before any stream starts

    async def public(doc: dict) -> dict:
        return (await serialize_generations(bk, user, [doc]))[0]

    updates = generations.follow(bk, gen_id=gen_id, user=user, public=public)

    async def stream():
        last = None
        async for item in updates:
            if item is None:
                yield b": keep-alive\n\n"
                continue
            last = item
            yield _sse("generation", item)
        yield _sse("end", {"id": gen_id, "status": last["status"] if last else None})

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


routes = [
    Route(GEN_BASE, generation_list, methods=["GET"]),
    Route(GEN_BASE + "generate_postmortem/", generate_postmortem, methods=["POST"]),
    Route(GEN_BASE + "{id}/", generation_detail, methods=["GET"]),
    Route(GEN_BASE + "{id}/retry/", generation_retry, methods=["POST"]),
    Route(GEN_BASE + "{id}/events/", generation_events, methods=["GET"]),
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

