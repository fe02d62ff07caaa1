"""Incidents in GraphQL: queries, mutations and types. Resolvers only call app.incidents.service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.incidents import deletion, service
from app.incidents.models import (EventSeverity, EventType, IncidentCreate, IncidentMarkDuplicate, IncidentResolve,
                                  IncidentUpdate, Severity, Status, TimelineEventIn)
from app.users.models import Classification, Role
from app.recommendations import service as recommendations
from schema.common import ClassificationEnum, Paginated, build, list_params, paginated, validate
from schema.context import Info, by_ids, by_limited_ids
from schema import predictions
from schema.errors import result, typed_errors
from schema.inputs import input_type

IncidentSeverity = strawberry.enum(Severity, name="IncidentSeverity")
IncidentStatus = strawberry.enum(Status, name="IncidentStatus")
TimelineEventType = strawberry.enum(EventType, name="TimelineEventType")
TimelineEventSeverity = strawberry.enum(EventSeverity, name="TimelineEventSeverity")

@strawberry.type
class TimelineEvent:
    id: str | None
    timestamp: datetime
    type: str
    source: str
    message: str
    severity: str | None
    details: JSON | None

    @classmethod
    def from_doc(cls, e: dict[str, Any]) -> "TimelineEvent":
        return cls(id=e.get("id"), timestamp=e["timestamp"], type=e["type"], source=e["source"], message=e["message"],
                   severity=e.get("severity"), details=e.get("details"))


@strawberry.type
class TimelineMetadata:
    name: str
    namespace: str
    event_count: int


@strawberry.type
class IncidentTimeline:
    api_version: str
    kind: str
    metadata: TimelineMetadata
    events: list[TimelineEvent]


# DataLoaders of one request (schema/context.py): incidents by id, as the caller may see them; timelines and
# recommendations by (incident id, limit)
IncidentByIdLoader = by_ids(service.incidents_by_ids)
TimelineByIncidentIdLoader = by_limited_ids(
    lambda bk, *, ids, limit, user: service.timelines_by_ids(bk, ids=ids, limit=limit))  # of visible incidents
RecommendationsByIncidentLoader = by_limited_ids(
    lambda bk, *, ids, limit, user: recommendations.for_incidents(bk, incident_ids=ids, user=user, limit=limit))


@strawberry.type
class Incident:
    id: strawberry.ID
    name: str
    namespace: str
    title: str
    description: str
    severity: IncidentSeverity
    status: IncidentStatus
    category: str
    affected_services: list[str]
    affected_teams: list[str]
    assignee: str | None
    reporter: str | None
    tags: list[str]
    root_cause: str
    resolution: str
    detected_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    data_classification: ClassificationEnum
    _doc: strawberry.Private[dict]

    @strawberry.field(description="Its recommendations the caller may see, most confident first (limit 1-50).")
    async def recommendations(self, info: Info, limit: int = 10) -> list[
            Annotated["Recommendation", strawberry.lazy("schema.recommendations")]]:
        docs = await info.context.loader("RecommendationsByIncidentLoader", RecommendationsByIncidentLoader).load(
            (self.id, recommendations.check_limit(limit)))
        return [build("Recommendation", d) for d in docs]

    @strawberry.field(description="Its likely root-cause categories and time to resolve, from its resolved "
                                  "look-alikes and matched learning patterns, and how sure that is (computed now).")
    async def predictions(self, info: Info) -> Annotated["Prediction", strawberry.lazy("schema.predictions")]:
        return await predictions.resolve(info, self.name)

    @strawberry.field(description="The incident this one duplicates (the same outage), when the caller may see it; "
                                  "null when it is no duplicate or its canonical is hidden from the caller.")
    async def duplicate_of(self, info: Info) -> "Incident | None":
        canonical = self._doc.get("duplicate_of")
        if not canonical:
            return None
        doc = await info.context.loader("IncidentByIdLoader", IncidentByIdLoader).load(canonical)
        return Incident.from_doc(doc) if doc else None

    @strawberry.field(description="The first `limit` events in time order (at most IKL_MAX_EVENTS_PER_INCIDENT).")
    async def timeline(self, info: Info, limit: int = 50) -> list[TimelineEvent]:
        service.check_event_limit(info.context.backends, limit)
        if "timeline" in self._doc:
            events = service.sorted_events(self._doc)[:limit]
        else:
            loader = info.context.loader("TimelineByIncidentId", TimelineByIncidentIdLoader)
            events = await loader.load((self.id, limit))
        return [TimelineEvent.from_doc(e) for e in events]

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "Incident":
        return cls(id=d["_id"], name=d["name"], namespace=d.get("namespace", "default"), title=d["title"],
                   description=d.get("description", ""), severity=Severity(d["severity"]), status=Status(d["status"]),
                   category=d.get("category", ""), affected_services=d.get("affected_services", []),
                   affected_teams=d.get("affected_teams", []), assignee=d.get("assignee"), reporter=d.get("reporter"),
                   tags=d.get("tags", []), root_cause=d.get("root_cause", ""), resolution=d.get("resolution", ""),
                   detected_at=d.get("detected_at"), resolved_at=d.get("resolved_at"), created_at=d["created_at"],
                   updated_at=d["updated_at"],
                   data_classification=Classification(d.get("data_classification", Classification.INTERNAL.value)),
                   _doc=d)


@strawberry.type
class SimilarIncident:
    incident: Incident
    score: float
    matching_factors: list["MatchingFactor"] = strawberry.field(
        description="What matched and its weight (app/incidents/similarity.py).")


@strawberry.type(description="One signal behind a similarity or a recommendation, and its weight.")
class MatchingFactor:
    factor: str
    weight: float
    value: float
    detail: str

    @classmethod
    def from_dict(cls, f: dict[str, Any]) -> "MatchingFactor":
        return cls(factor=str(f.get("factor")), weight=float(f.get("weight") or 0), value=float(f.get("value") or 0),
                   detail=str(f.get("detail") or ""))


TimelineEventInput = input_type(TimelineEventIn, "TimelineEventInput")
CreateIncidentInput = input_type(IncidentCreate, "CreateIncidentInput")
UpdateIncidentInput = input_type(IncidentUpdate, "UpdateIncidentInput", partial=True)
ResolveIncidentInput = input_type(IncidentResolve, "ResolveIncidentInput")


IncidentResult = result("IncidentResult", Incident)


@strawberry.type(description="An incident that was deleted.")
class DeletedIncident:
    name: str


DeleteIncidentResult = result("DeleteIncidentResult", DeletedIncident)


@strawberry.type
class IncidentQuery:
    @strawberry.field(description="Incidents, filtered, searched, ordered and paginated like the REST list.")
    async def incidents(self, info: Info, status: list[IncidentStatus] | None = None,
                        severity: list[IncidentSeverity] | None = None, namespace: str | None = None,
                        service_name: Annotated[str | None, strawberry.argument(name="service")] = None,
                        category: str | None = None, assignee: str | None = None,
                        data_classification: list[ClassificationEnum] | None = None, search: str | None = None,
                        ordering: str | None = None, page: int = 1, page_size: int = 20) -> Paginated[Incident]:
        params = list_params(status=status, severity=severity, namespace=namespace, service=service_name,
                             category=category, assignee=assignee, data_classification=data_classification,
                             search=search, ordering=ordering, page=page, page_size=page_size)
        result = await service.list_incidents(info.context.backends, params=params, user=info.context.user)
        return paginated(result, Incident.from_doc)

    @strawberry.field
    async def incident(self, info: Info, id: strawberry.ID | None = None, name: str | None = None) -> Incident:
        return Incident.from_doc(await service.get_incident(info.context.backends, name=name, incident_id=id,
                                                            user=info.context.user))

    @strawberry.field
    async def incident_timeline(self, info: Info, name: str, limit: int = 1000) -> IncidentTimeline:
        """The envelope of the REST timeline; `metadata.eventCount` counts every event, `events` holds
        the first `limit` in time order."""
        service.check_event_limit(info.context.backends, limit)
        doc = await service.get_incident(info.context.backends, name=name, user=info.context.user)
        events = service.sorted_events(doc)
        return IncidentTimeline(api_version=service.TIMELINE_API_VERSION, kind=service.TIMELINE_KIND,
                                metadata=TimelineMetadata(name=doc["name"], namespace=doc.get("namespace", "default"),
                                                          event_count=len(events)),
                                events=[TimelineEvent.from_doc(e) for e in events[:limit]])

    @strawberry.field(description="The past incidents most like this one (limit 1-50), optionally only of one "
                                  "namespace, of some statuses, or detected in the last `days` days.")
    async def similar_incidents(self, info: Info, incident_id: strawberry.ID, limit: int = 5,
                                namespace: str | None = None, status: list[IncidentStatus] | None = None,
                                days: int | None = None) -> list[SimilarIncident]:
        _, hits = await service.similar_incidents(info.context.backends, incident_id=incident_id, limit=limit,
                                                  user=info.context.user, namespace=namespace,
                                                  statuses=[s.value for s in status or []], days=days)
        return [SimilarIncident(incident=Incident.from_doc(m.doc), score=m.score,
                                matching_factors=[MatchingFactor.from_dict(f) for f in m.factors]) for m in hits]


@strawberry.type
class IncidentMutation:
    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def create_incident(self, info: Info, input: CreateIncidentInput) -> IncidentResult:
        user = info.context.user
        return Incident.from_doc(await service.create_incident(
            info.context.backends, data=validate(IncidentCreate, input), user=user))

    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def update_incident(self, info: Info, name: str, input: UpdateIncidentInput) -> IncidentResult:
        user = info.context.user
        return Incident.from_doc(await service.update_incident(
            info.context.backends, name=name, data=validate(IncidentUpdate, input), user=user))

    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def add_timeline_event(self, info: Info, name: str, event: TimelineEventInput) -> IncidentResult:
        user = info.context.user
        return Incident.from_doc(await service.add_events(
            info.context.backends, name=name, events=[validate(TimelineEventIn, event)], user=user))

    @strawberry.mutation(description="Close an incident as a duplicate of another (`duplicateOf`: its name); "
                                     "a canonical that is itself a duplicate stands for its own canonical.")
    @typed_errors(role=Role.EDITOR)
    async def mark_incident_duplicate(self, info: Info, name: str, duplicate_of: str) -> IncidentResult:
        user = info.context.user
        return Incident.from_doc(await service.mark_duplicate(
            info.context.backends, name=name, data=validate(IncidentMarkDuplicate, {"duplicate_of": duplicate_of}),
            user=user))

    @strawberry.mutation(description="Delete an incident (admin): refused while it has a postmortem or duplicates; "
                                     "its recommendations and generation logs go with it (docs/domains/incidents.md).")
    @typed_errors(role=Role.ADMIN)
    async def delete_incident(self, info: Info, name: str) -> DeleteIncidentResult:
        await deletion.delete_incident(info.context.backends, name=name, user=info.context.user)
        return DeletedIncident(name=name)

    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def resolve_incident(self, info: Info, name: str, input: ResolveIncidentInput) -> IncidentResult:
        user = info.context.user
        return Incident.from_doc(await service.resolve_incident(
            info.context.backends, name=name, data=validate(IncidentResolve, input), user=user))
