"""REST routes under /api/knowledge/learning-patterns/ — parse, call the service, shape the output."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http.auth import current_user
from app.http.responses import JSON, documented, int_param, read_body
from app.listing import drf_response
from app.patterns import run_records, service
from app.patterns.models import ApplyRequest, MergeRequest, PatternContent, PatternUpdate, ValidateRequest
from app.timefmt import isoz
from app.users import service as users

BASE = "/api/knowledge/learning-patterns/"
FIELDS = ("name", "pattern_type", "description", "frequency", "success_rate", "confidence_score", "is_validated",
          "validated_by", "validation_notes", "times_applied", "data_classification")
LISTS = ("triggers", "actions", "outcomes")
DATES = ("last_applied", "validated_at", "created_at", "updated_at")


async def serialize(request: Request, docs: list[dict]) -> list[dict[str, Any]]:
    """The documented LearningPattern; sources and history only as far as the reader may see them."""
    bk, user = request.app.state.backends, current_user(request)
    found_incidents, found_pms = await service.visible_sources(bk, docs, user)
    ids = {d["validated_by"] for d in docs if d.get("validated_by")}
    people = await users.users_by_ids(bk, ids=list(ids)) if ids else {}
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **documented(d, fields=FIELDS, lists=LISTS, dates=DATES)}
        item["validated_by_username"] = users.username(people, d.get("validated_by"))
        item["source_incidents"] = [i for i in d.get("source_incidents") or [] if i in found_incidents]
        item["source_postmortems"] = [i for i in d.get("source_postmortems") or [] if i in found_pms]
        item["history"] = [{**h, "at": isoz(h.get("at"))} for h in service.readable_history(
            d, user, incidents=found_incidents, postmortems=found_pms)]
        out.append(item)
    return out


async def list_or_create(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    if request.method == "POST":
        doc = await service.create_pattern(bk, data=await read_body(request, PatternContent), user=user)
        return JSON((await serialize(request, [doc]))[0], status_code=201)
    page = await service.list_patterns(bk, params=request.query_params, user=user)
    return JSON(drf_response(str(request.url), page, await serialize(request, page.items)))


async def detail(request: Request) -> Response:
    bk, user, pattern_id = request.app.state.backends, current_user(request), request.path_params["id"]
    if request.method == "GET":
        doc = await service.get_pattern(bk, pattern_id=pattern_id, user=user)
    elif request.method == "DELETE":
        await service.delete_pattern(bk, pattern_id=pattern_id, user=user)
        return Response(status_code=204)
    else:
        replace = request.method == "PUT"
        data = await read_body(request, PatternContent if replace else PatternUpdate)
        doc = await service.update_pattern(bk, pattern_id=pattern_id, data=data, user=user, replace=replace)
    return JSON((await serialize(request, [doc]))[0])


def _action(fn, model):
    async def endpoint(request: Request) -> JSON:
        doc = await fn(request.app.state.backends, pattern_id=request.path_params["id"],
                       data=await read_body(request, model), user=current_user(request))
        return JSON((await serialize(request, [doc]))[0])
    return endpoint


async def statistics(request: Request) -> JSON:
    weeks = int_param(request, "weeks", default=12, low=1, high=104)
    return JSON(await service.statistics(request.app.state.backends, user=current_user(request), weeks=weeks))


# --- mining runs (admins) ---------------------------------------------------------------------------

RUNS = BASE + "mining_runs/"
RUN_FIELDS = ("status", "trigger", "days", "min_frequency", "incidents", "eligible", "duplicates_skipped",
              "counts", "patterns", "processing_time", "error_message", "data_classification")
RUN_DATES = ("started_at", "claimed_at", "completed_at", "leased_until")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # taken here, so none falls through to `{id}/`


async def serialize_runs(request: Request, docs: list[dict]) -> list[dict[str, Any]]:
    ids = {d["requested_by"] for d in docs if d.get("requested_by")}
    people = await users.users_by_ids(request.app.state.backends, ids=list(ids)) if ids else {}
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **documented(d, fields=RUN_FIELDS, dates=RUN_DATES)}
        item["requested_by"] = d.get("requested_by")
        item["requested_by_username"] = users.username(people, d.get("requested_by"))
        out.append(item)
    return out


def _read_only(request: Request) -> None:
    if request.method != "GET":
        raise HTTPException(405, "Method Not Allowed")


async def mining_runs(request: Request) -> JSON:
    _read_only(request)
    page = await run_records.list_runs(request.app.state.backends, params=request.query_params,
                                       user=current_user(request))
    return JSON(drf_response(str(request.url), page, await serialize_runs(request, page.items)))


async def mining_run(request: Request) -> JSON:
    _read_only(request)
    doc = await run_records.get_run(request.app.state.backends, run_id=request.path_params["id"],
                                    user=current_user(request))
    return JSON((await serialize_runs(request, [doc]))[0])


routes = [
    Route(BASE, list_or_create, methods=["GET", "POST"]),
    Route(BASE + "statistics/", statistics, methods=["GET"]),
    Route(RUNS, mining_runs, methods=ALL_METHODS),  # before `{id}/`, which would take "mining_runs" for an id
    Route(RUNS + "{id}/", mining_run, methods=ALL_METHODS),
    Route(BASE + "{id}/", detail, methods=["GET", "PUT", "PATCH", "DELETE"]),
    Route(BASE + "{id}/validate/", _action(service.validate, ValidateRequest), methods=["POST"]),
    Route(BASE + "{id}/apply/", _action(service.apply, ApplyRequest), methods=["POST"]),
    Route(BASE + "{id}/merge/", _action(service.merge, MergeRequest), methods=["POST"]),
]
