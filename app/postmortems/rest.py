"""REST routes under /api/knowledge/postmortems/ and /api/knowledge/postmortem-generations/: the resources'
declarations (app/http/resources.py), their operations (call the services) and their serializers."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response, StreamingResponse

from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.http.responses import JSON, documented, json_default
from app.listing import Page, drf_response
from app.postmortems import drafting, generations, service
from app.postmortems.models import (ActionItemUpdate, GenerateAutomatedRequest, GenerationRequest,
                                    PostmortemCreate, PostmortemReplace, PostmortemUpdate)
from app.postmortems.outputs import (AutomatedDraftResult, Postmortem, PostmortemGeneration,
                                     PostmortemGenerationStarted, PostmortemStatistics, PostmortemSummary)
from app.users import service as users
from app.users.models import Role, User

BASE = "/api/knowledge/postmortems/"
LIST_FIELDS = ("id", "title", "incident", "incident_title", "status", "severity", "owner_username",
               "completion_percentage", "is_overdue", "created_at", "due_date")
TEXT = ("title", "incident", "executive_summary", "root_cause_analysis", "impact_assessment", "lessons_learned",
        "is_automated", "generation_confidence", "status", "severity", "owner", "approver", "data_classification")
LISTS = ("timeline", "auto_generated_sections", "reviewers", "related_incidents",
         "affected_services", "affected_teams")
DATES = ("created_at", "updated_at", "published_at", "due_date")


async def serialize(bk: Backends, user: User, docs: list[dict], *, summary: bool = False) -> list[dict[str, Any]]:
    """The documented detail shape (or the list's summary), with usernames and incident titles
    fetched in one query each for the whole page."""
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


async def _page(call: Call, page: Page) -> dict:
    """A page of postmortems in the list's summary shape."""
    return drf_response(str(call.request.url), page, await serialize(call.bk, call.user, page.items, summary=True))


async def create(call: Call) -> dict:
    """Create a DRAFT postmortem for an incident."""
    return await call.one(await service.create_postmortem(call.bk, data=call.body, user=call.user))


async def list_postmortems(call: Call) -> dict:
    """List the postmortems the caller may see."""
    return await _page(call, await service.list_postmortems(call.bk, params=call.params, user=call.user))


async def detail(call: Call) -> dict:
    """Get a postmortem."""
    return await call.one(await service.view_postmortem(call.bk, pm_id=call.key, user=call.user))


def _update(replace: bool):
    async def run(call: Call) -> dict:
        return await call.one(await service.update_postmortem(call.bk, pm_id=call.key, data=call.body,
                                                              user=call.user, replace=replace))
    return run


async def delete(call: Call) -> Response:
    """Delete a postmortem."""
    await service.delete_postmortem(call.bk, pm_id=call.key, user=call.user)
    return Response(status_code=204)


MOVES = {  # the workflow actions: what each does, for the document
    "submit_for_review": "Submit a DRAFT postmortem for review (to IN_REVIEW).",
    "request_changes": "Send a postmortem in review back to DRAFT.",
    "approve": "Approve a postmortem in review (to APPROVED).",
    "publish": "Publish an APPROVED postmortem as a knowledge-base article.",
    "archive": "Archive a PUBLISHED postmortem (read-only from then on).",
}


def _move(action: str) -> dict[str, Op]:
    async def run(call: Call) -> dict:
        return await call.one(await service.transition(call.bk, pm_id=call.key, action=action, user=call.user))
    return {"POST": Op(run, service.MOVE_RULES[action], summary=MOVES[action], response=Postmortem, errors=(409,))}


async def action_item(call: Call) -> dict:
    """Change one action item of a postmortem."""
    return await call.one(await service.update_action_item(
        call.bk, pm_id=call.key, item_id=call.request.path_params["item_id"], data=call.body, user=call.user))


async def overdue(call: Call) -> dict:
    """List the overdue postmortems: past their due date, not yet published or archived."""
    return await _page(call, await service.list_postmortems(call.bk, params=call.params, user=call.user,
                                                            overdue=True))


async def statistics(call: Call) -> dict:
    """Get figures over the postmortems the caller may see."""
    return await service.statistics(call.bk, user=call.user)


async def generate_automated(call: Call) -> dict:
    """Draft a postmortem's sections from its incident's data.

    Sections a person edited are kept unless `force`."""
    doc = await drafting.generate_automated(call.bk, pm_id=call.key, user=call.user, force=call.body.force)
    return {"message": "Postmortem generated successfully", "confidence_score": doc["generation_confidence"]}


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


async def _serialize_generations(bk: Backends, user: User, docs: list[dict]) -> list[dict[str, Any]]:
    return await serialize_generations(bk, user, docs)


async def generation_list(call: Call) -> Page:
    """List the postmortem generation logs the caller may see."""
    return await generations.list_generations(call.bk, params=call.params, user=call.user)


async def generation_detail(call: Call) -> dict:
    """Get a postmortem generation log."""
    return await call.one(await generations.get_generation(call.bk, gen_id=call.key, user=call.user))


async def generate_postmortem(call: Call) -> JSON:
    """Start generating the postmortem of an incident.

    202 with the documented `{"message", "generation_id"}`; 200 with the running one's id when the incident
    already has a generation in progress."""
    doc, created = await generations.start(call.bk, data=call.body, user=call.user)
    message = "Postmortem generation initiated" if created else "Postmortem generation already in progress"
    return JSON({"message": message, "generation_id": doc["_id"], "status": doc["status"]},
                status_code=202 if created else 200)


async def generation_retry(call: Call) -> dict:
    """Run a FAILED generation again."""
    doc = await generations.retry(call.bk, gen_id=call.key, user=call.user)
    return {"message": "Postmortem generation restarted", "generation_id": doc["_id"], "status": doc["status"]}


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=json_default, separators=(',', ':'))}\n\n".encode()


async def generation_events(call: Call) -> Response:
    """Follow a generation log live (Server-Sent Events).

    The log now (`event: generation`, the log's JSON), again after every change, a comment every keep-alive
    interval, and `event: end` (`{"id", "status"}`) once it is finished (then the stream closes)."""
    bk, user, gen_id = call.bk, call.user, call.key
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


GENERATIONS = Resource(
    base=GEN_BASE.rstrip("/"), serialize=_serialize_generations,
    description="Automated postmortem generation: a log per request, run by a worker, followed live.",
    collection={"GET": Op(generation_list, response=PostmortemGeneration, listing=generations.LIST_SPEC)},
    views={"generate_postmortem": {"POST": Op(generate_postmortem, Role.EDITOR, GenerationRequest, status=202,
                                              also=(200,), response=PostmortemGenerationStarted, errors=(409,))}},
    item={"GET": Op(generation_detail, response=PostmortemGeneration)},
    actions={"retry": {"POST": Op(generation_retry, Role.EDITOR, status=202, response=PostmortemGenerationStarted,
                                  errors=(409,))},
             "events": {"GET": Op(generation_events, response="text/event-stream")}})
RESOURCE = Resource(
    base=BASE.rstrip("/"), serialize=serialize,
    description="Postmortems of incidents and their review workflow: DRAFT → IN_REVIEW → APPROVED → PUBLISHED → "
                "ARCHIVED.",
    collection={"GET": Op(list_postmortems, response=PostmortemSummary, listing=service.LIST_SPEC),
                "POST": Op(create, Role.EDITOR, PostmortemCreate, status=201, response=Postmortem)},
    views={"overdue": {"GET": Op(overdue, response=PostmortemSummary, listing=service.LIST_SPEC)},
           "statistics": {"GET": Op(statistics, response=PostmortemStatistics)}},
    item={"GET": Op(detail, response=Postmortem),
          "PUT": Op(_update(True), service.UPDATE_RULE, PostmortemReplace, summary="Replace a postmortem's editable fields.",
                    response=Postmortem, errors=(409,)),
          "PATCH": Op(_update(False), service.UPDATE_RULE, PostmortemUpdate, summary="Change some of a postmortem's fields.",
                      response=Postmortem, errors=(409,)),
          "DELETE": Op(delete, Role.ADMIN, status=204)},
    actions={**{action: _move(action) for action in MOVES},
             "action_items/{item_id}": {"PATCH": Op(action_item, Role.EDITOR, ActionItemUpdate, response=Postmortem,
                                                    errors=(409,))},
             "generate_automated": {"POST": Op(generate_automated, Role.EDITOR, GenerateAutomatedRequest,
                                               response=AutomatedDraftResult, errors=(409, 422))}})
RESOURCES = [GENERATIONS, RESOURCE]
