"""REST routes under /api/v1/incidents/ — parse, call the service, shape the output."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from app.http.auth import current_user
from app.http.responses import JSON, int_param, read_body
from app.incidents import service
from app.incidents.models import EventsAppend, IncidentCreate, IncidentMarkDuplicate, IncidentResolve, IncidentUpdate
from app.listing import drf_response
from app.timefmt import isoz
from app.users.models import Role, require_role

FIELDS = ("name", "namespace", "title", "description", "severity", "status", "category", "affected_services",
          "affected_teams", "assignee", "reporter", "tags", "root_cause", "resolution", "data_classification")


def incident_json(doc: dict[str, Any], canonicals: dict[str, str] | None = None) -> dict[str, Any]:
    """`canonicals`: the names of the canonicals the reader may see, by id (`service.canonical_names`);
    `duplicate_of` is null for any other, so a hidden canonical reads like none."""
    out: dict[str, Any] = {"id": doc["_id"]}
    out.update({k: doc.get(k) for k in FIELDS})
    out["duplicate_of"] = (canonicals or {}).get(doc.get("duplicate_of") or "")
    for k in ("detected_at", "resolved_at", "created_at", "updated_at"):
        out[k] = isoz(doc.get(k))
    if "timeline" in doc:
        out["timeline"] = [{"id": e.get("id"), **{k: e[k] for k in ("type", "source", "message") if k in e},
                            "timestamp": isoz(e["timestamp"]), "severity": e.get("severity"),
                            "details": e.get("details")} for e in service.sorted_events(doc)]
        out["event_count"] = len(out["timeline"])
    return out


async def shaped(request: Request, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """These incidents as JSON for the caller, their canonicals' names looked up in one query."""
    names = await service.canonical_names(request.app.state.backends, docs=docs, user=current_user(request))
    return [incident_json(d, names) for d in docs]


async def one(request: Request, doc: dict[str, Any]) -> dict[str, Any]:
    return (await shaped(request, [doc]))[0]


async def list_or_create(request: Request) -> JSON:
    bk = request.app.state.backends
    user = current_user(request)
    if request.method == "POST":
        require_role(user, Role.EDITOR)
        data = await read_body(request, IncidentCreate)
        return JSON(incident_json(await service.create_incident(bk, data=data, user=user)), status_code=201)
    page = await service.list_incidents(bk, params=request.query_params, user=user)
    return JSON(drf_response(str(request.url), page, await shaped(request, page.items)))


async def detail(request: Request) -> JSON:
    bk = request.app.state.backends
    user = current_user(request)
    name = request.path_params["name"]
    if request.method == "PATCH":
        require_role(user, Role.EDITOR)
        data = await read_body(request, IncidentUpdate)
        return JSON(await one(request, await service.update_incident(bk, name=name, data=data, user=user)))
    return JSON(await one(request, await service.get_incident(bk, name=name, user=user)))


async def timeline(request: Request) -> JSON:
    return JSON(await service.timeline(request.app.state.backends, name=request.path_params["name"],
                                       user=current_user(request)))


async def append_events(request: Request) -> JSON:
    user = require_role(current_user(request), Role.EDITOR)
    data = await read_body(request, EventsAppend)
    doc = await service.add_events(request.app.state.backends, name=request.path_params["name"], events=data.events,
                                   user=user)
    return JSON({"name": doc["name"], "appended": len(data.events), "eventCount": len(doc.get("timeline") or [])},
                status_code=201)


async def resolve(request: Request) -> JSON:
    user = require_role(current_user(request), Role.EDITOR)
    data = await read_body(request, IncidentResolve)
    doc = await service.resolve_incident(request.app.state.backends, name=request.path_params["name"], data=data,
                                         user=user)
    return JSON(await one(request, doc))


async def mark_duplicate(request: Request) -> JSON:
    user = require_role(current_user(request), Role.EDITOR)
    data = await read_body(request, IncidentMarkDuplicate)
    doc = await service.mark_duplicate(request.app.state.backends, name=request.path_params["name"], data=data,
                                       user=user)
    return JSON(await one(request, doc))


async def similar(request: Request) -> JSON:
    bk = request.app.state.backends
    limit = int_param(request, "limit", default=5, low=1, high=50)
    doc, hits = await service.similar_incidents(bk, name=request.path_params["name"], limit=limit,
                                                user=current_user(request))
    shown = await shaped(request, [m.doc for m in hits])
    return JSON({"incident": doc["name"], "results": [{**j, "score": m.score, "matching_factors": m.factors}
                                                      for j, m in zip(shown, hits)]})


routes = [
    Route("/api/v1/incidents/", list_or_create, methods=["GET", "POST"]),
    Route("/api/v1/incidents/{name}/", detail, methods=["GET", "PATCH"]),
    Route("/api/v1/incidents/{name}/timeline", timeline, methods=["GET"]),
    Route("/api/v1/incidents/{name}/timeline/", timeline, methods=["GET"]),
    Route("/api/v1/incidents/{name}/events/", append_events, methods=["POST"]),
    Route("/api/v1/incidents/{name}/resolve/", resolve, methods=["POST"]),
    Route("/api/v1/incidents/{name}/mark_duplicate/", mark_duplicate, methods=["POST"]),
    Route("/api/v1/incidents/{name}/similar/", similar, methods=["GET"]),
]
