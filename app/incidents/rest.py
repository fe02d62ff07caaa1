"""REST routes under /api/v1/incidents/: the resource's declaration (app/http/resources.py), its operations
(call the service) and its serializer."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.inputs import Param
from app.incidents import deletion, service
from app.incidents.models import (EventsAppend, IncidentCreate, IncidentMarkDuplicate, IncidentResolve, IncidentUpdate,
                                  Status)
from app.incidents.outputs import EventsAppended, Incident, IncidentSummary, IncidentTimeline, SimilarIncidents
from app.listing import Page
from app.users.models import Role, User

FIELDS = ("name", "namespace", "title", "description", "severity", "status", "category", "affected_services",
          "affected_teams", "assignee", "reporter", "tags", "root_cause", "resolution", "data_classification")
DATES = ("detected_at", "resolved_at", "created_at", "updated_at")
# the JSON's keys in order, and the stored field each is read from (`duplicate_of`'s id is then replaced by a name)
_KEYS = ("id", *FIELDS, "duplicate_of", *DATES)
_STORED = ("_id", *FIELDS, "duplicate_of", *DATES)


def incident_json(doc: dict[str, Any], canonicals: dict[str, str] | None = None) -> dict[str, Any]:
    """`canonicals`: the names of the canonicals the reader may see, by id (`service.canonical_names`);
    `duplicate_of` is null for any other, so a hidden canonical reads like none."""
    # a page of 20 is built on every list request: one C-level zip, not a loop per field; datetimes are left to
    # the body writer (isoz's format)
    out: dict[str, Any] = dict(zip(_KEYS, map(doc.get, _STORED)))
    if out["duplicate_of"] is not None:
        out["duplicate_of"] = canonicals.get(out["duplicate_of"]) if canonicals else None
    if "timeline" in doc:
        out["timeline"] = [{"id": e.get("id"), **{k: e[k] for k in ("type", "source", "message") if k in e},
                            "timestamp": e["timestamp"], "severity": e.get("severity"),
                            "details": e.get("details")} for e in service.sorted_events(doc)]
        out["event_count"] = len(out["timeline"])
    return out


async def shaped(bk: Backends, user: User, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """These incidents as JSON for the caller, their canonicals' names looked up in one query."""
    names = await service.canonical_names(bk, docs=docs, user=user)
    return [incident_json(d, names) for d in docs]


async def create(call: Call) -> dict:
    """Create an incident (its name generated as INC-YYYYMMDD-NNN when not given).

    A name already taken is a 409 `INCIDENT_EXISTS`; `reporter` defaults to the caller."""
    return incident_json(await service.create_incident(call.bk, data=call.body, user=call.user))


async def list_incidents(call: Call) -> Page:
    """List the incidents the caller may see, without their timelines."""
    return await service.list_incidents(call.bk, params=call.params, user=call.user)


async def detail(call: Call) -> dict:
    """Get an incident with its timeline."""
    return await call.one(await service.get_incident(call.bk, name=call.key, user=call.user))


async def update(call: Call) -> dict:
    """Update some fields of an incident (a status change is recorded in its timeline)."""
    return await call.one(await service.update_incident(call.bk, name=call.key, data=call.body, user=call.user))


async def delete(call: Call) -> Response:
    """Delete an incident, once no postmortem or duplicate refers to it.

    While one does, a 409 (`INCIDENT_HAS_POSTMORTEMS`, `INCIDENT_HAS_DUPLICATES`): delete or undo them first.
    Its recommendations and generation logs go with it; patterns and articles drop it from their sources."""
    await deletion.delete_incident(call.bk, name=call.key, user=call.user)
    return Response(status_code=204)


async def timeline(call: Call) -> dict:
    """Get the timeline of an incident (the IncidentTimeline envelope).

    Events in time order; an event's `severity` and `details` are left out when it has none."""
    return await service.timeline(call.bk, name=call.key, user=call.user)


async def append_events(call: Call) -> dict:
    """Append events to an incident's timeline: one event object, or `{"events": [...]}`.

    A timeline past its limits (events, bytes) is a 409 `TIMELINE_FULL`, its `details` saying by how much."""
    doc = await service.add_events(call.bk, name=call.key, events=call.body.events, user=call.user)
    return {"name": doc["name"], "appended": len(call.body.events), "eventCount": len(doc.get("timeline") or [])}


async def resolve(call: Call) -> dict:
    """Resolve an open incident, recording its resolution (and root cause).

    Status RESOLVED and a Resolution event; an incident already RESOLVED or CLOSED is a 409 `ALREADY_RESOLVED`."""
    return await call.one(await service.resolve_incident(call.bk, name=call.key, data=call.body, user=call.user))


async def mark_duplicate(call: Call) -> dict:
    """Close an incident as a duplicate of another one.

    Status CLOSED, `duplicate_of` set; its own duplicates follow it to the canonical. Naming a CLOSED incident
    is a 409 `DUPLICATE_TARGET_CLOSED`, a concurrent change a 409 `CONCURRENT_UPDATE`; one that is missing or
    hidden a 404."""
    return await call.one(await service.mark_duplicate(call.bk, name=call.key, data=call.body, user=call.user))


SIMILAR_QUERY = (
    Param("limit", int, "How many incidents at most", default=5, low=1, high=50),
    Param("namespace", str, "Only incidents of this namespace"),
    Param("status", "list", "Only incidents of these statuses", default=[], enum=tuple(s.value for s in Status)),
    Param("days", int, "Only incidents detected in the last this many days (0: any time)", default=0, low=0,
          high=36500),
)


async def similar(call: Call) -> dict:
    """Find the past incidents most like this one, best first.

    Each hit is the incident without its timeline (`event_count` says how long it is), its 0-1 score and
    the factors that matched: text, meaning (sentence embeddings) and structure (services, category,
    namespace, severity, timeline steps). Duplicates and this incident's own canonical are never hits."""
    doc, hits = await service.similar_incidents(call.bk, name=call.key, limit=call.arg("limit"), user=call.user,
                                                namespace=call.arg("namespace"), statuses=call.arg("status"),
                                                days=call.arg("days") or None)
    shown = await shaped(call.bk, call.user, [m.doc for m in hits])
    return {"incident": doc["name"], "results": [
        {**{k: v for k, v in j.items() if k != "timeline"}, "score": m.score, "matching_factors": m.factors}
        for j, m in zip(shown, hits)]}


RESOURCE = Resource(
    base="/api/v1/incidents", key="name", serialize=shaped,
    collection={"GET": Op(list_incidents, response=IncidentSummary, listing=service.LIST_SPEC),
                "POST": Op(create, Role.EDITOR, IncidentCreate, status=201, response=Incident, errors=(409,))},
    item={"GET": Op(detail, response=Incident),
          "PATCH": Op(update, Role.EDITOR, IncidentUpdate, response=Incident),
          "DELETE": Op(delete, Role.ADMIN, status=204, errors=(409,))},
    actions={"timeline": {"GET": Op(timeline, response=IncidentTimeline)},
             "events": {"POST": Op(append_events, Role.EDITOR, EventsAppend, status=201, response=EventsAppended,
                                   errors=(409,))},
             "resolve": {"POST": Op(resolve, Role.EDITOR, IncidentResolve, response=Incident, errors=(409,))},
             "mark_duplicate": {"POST": Op(mark_duplicate, Role.EDITOR, IncidentMarkDuplicate, response=Incident,
                                           errors=(409,))},
             "similar": {"GET": Op(similar, response=SimilarIncidents, query=SIMILAR_QUERY)}})
RESOURCES = [RESOURCE]
