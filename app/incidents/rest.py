"""REST routes under /api/v1/incidents/: the resource's declaration (app/http/resources.py), its operations
(call the service) and its serializer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.http.auth import current_user
from app.http.resources import Call, Op, Resource
from app.http.responses import int_param
from app.incidents import deletion, service
from app.incidents.models import EventsAppend, IncidentCreate, IncidentMarkDuplicate, IncidentResolve, IncidentUpdate
from app.listing import Page
from app.timefmt import isoz
from app.users.models import Role

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


async def create(call: Call) -> dict:
    return incident_json(await service.create_incident(call.bk, data=call.body, user=call.user))


async def list_incidents(call: Call) -> Page:
    return await service.list_incidents(call.bk, params=call.params, user=call.user)


async def detail(call: Call) -> dict:
    return await call.one(await service.get_incident(call.bk, name=call.key, user=call.user))


async def update(call: Call) -> dict:
    return await call.one(await service.update_incident(call.bk, name=call.key, data=call.body, user=call.user))


async def delete(call: Call) -> Response:
    await deletion.delete_incident(call.bk, name=call.key, user=call.user)
    return Response(status_code=204)


async def timeline(call: Call) -> dict:
    return await service.timeline(call.bk, name=call.key, user=call.user)


async def append_events(call: Call) -> dict:
    doc = await service.add_events(call.bk, name=call.key, events=call.body.events, user=call.user)
    return {"name": doc["name"], "appended": len(call.body.events), "eventCount": len(doc.get("timeline") or [])}


async def resolve(call: Call) -> dict:
    return await call.one(await service.resolve_incident(call.bk, name=call.key, data=call.body, user=call.user))


async def mark_duplicate(call: Call) -> dict:
    return await call.one(await service.mark_duplicate(call.bk, name=call.key, data=call.body, user=call.user))


async def similar(call: Call) -> dict:
    """`?limit=` (1-50), `?namespace=`, `?status=` (comma list), `?days=` (detected in the last days); each
    hit is the incident without its timeline (`event_count` says how long it is), its score and factors."""
    limit = int_param(call.request, "limit", default=5, low=1, high=50)
    days = int_param(call.request, "days", default=0, low=0, high=36500) or None
    statuses = [s.strip().upper() for s in (call.params.get("status") or "").split(",") if s.strip()]
    doc, hits = await service.similar_incidents(call.bk, name=call.key, limit=limit, user=call.user,
                                                namespace=call.params.get("namespace"), statuses=statuses, days=days)
    shown = await shaped(call.request, [m.doc for m in hits])
    return {"incident": doc["name"], "results": [
        {**{k: v for k, v in j.items() if k != "timeline"}, "score": m.score, "matching_factors": m.factors}
        for j, m in zip(shown, hits)]}


RESOURCE = Resource(
    base="/api/v1/incidents", key="name", serialize=shaped,
    collection={"GET": Op(list_incidents), "POST": Op(create, Role.EDITOR, IncidentCreate, status=201)},
    item={"GET": Op(detail), "PATCH": Op(update, Role.EDITOR, IncidentUpdate), "DELETE": Op(delete, Role.ADMIN)},
    actions={"timeline": {"GET": Op(timeline)},
             "events": {"POST": Op(append_events, Role.EDITOR, EventsAppend, status=201)},
             "resolve": {"POST": Op(resolve, Role.EDITOR, IncidentResolve)},
             "mark_duplicate": {"POST": Op(mark_duplicate, Role.EDITOR, IncidentMarkDuplicate)},
             "similar": {"GET": Op(similar)}})
routes = RESOURCE.routes()
