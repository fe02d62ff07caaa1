"""What the incidents REST API answers (app/incidents/rest.py), as output models for the OpenAPI document:
an incident (`Incident`; without its timeline in lists, `IncidentSummary`), its timeline envelope
(`IncidentTimeline`, the documented `GET /api/v1/incidents/{name}/timeline` shape), the answer of an events
append (`EventsAppended`) and the incidents most like one (`SimilarIncidents`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.incidents.models import EventSeverity, EventType, Severity, Status
from app.outputs import JsonObject, Output, Timestamp, examples
from app.users.models import Classification


def _omitted(description: str) -> Any:
    """A key that is left out when it has no value (never written as null)."""
    return Field(default_factory=lambda: None, description=description)


_EVENTS = [
    {"timestamp": "2026-03-19T15:20:00Z", "type": "Detection", "source": "k8s-watcher",
     "message": "OOMKill detectado no pod payment-service-7d4b8c9f6-x2k4m", "severity": "high"},
    {"timestamp": "2026-03-19T15:20:05Z", "type": "Analysis", "source": "decision-engine",
     "message": "Iniciando análise de root cause com IA",
     "details": {"model": "claude-sonnet-4-20250514", "contextSize": 4200}},
    {"timestamp": "2026-03-19T15:20:30Z", "type": "Analysis", "source": "decision-engine",
     "message": "Root cause identificado: memory limit insuficiente (512Mi) para carga atual",
     "details": {"confidence": 0.87, "recommendation": "Aumentar memory limit para 1Gi"}},
    {"timestamp": "2026-03-19T15:21:00Z", "type": "RunbookMatch", "source": "runbook-engine",
     "message": "Runbook 'oomkill-standard' selecionado para remediação",
     "details": {"runbook": "runbook-oomkill-standard", "matchScore": 0.92}},
    {"timestamp": "2026-03-19T15:21:05Z", "type": "ApprovalRequired", "source": "approval-workflow",
     "message": "Aguardando aprovação para executar remediação (riskScore: 65)",
     "details": {"approvalName": "APR-20260319-001", "requiredRole": "operator"}},
    {"timestamp": "2026-03-19T15:25:00Z", "type": "Notification", "source": "notification-manager",
     "message": "Alerta enviado via Slack para canal #sre-alerts",
     "details": {"channel": "slack", "target": "#sre-alerts"}},
]
_SUMMARY = {
    "id": "5f0c6a0e-2b8e-4c1a-9d3e-7a6b5c4d3e2f", "name": "INC-20260319-001", "namespace": "production",
    "title": "OOMKill in payment-service", "description": "payment-service pods killed for exceeding their memory limit",
    "severity": "HIGH", "status": "RESOLVED", "category": "capacity", "affected_services": ["payment-service"],
    "affected_teams": ["payments"], "assignee": "alice", "reporter": "k8s-watcher", "tags": ["oomkill", "memory"],
    "root_cause": "Memory limit (512Mi) too small for the current load",
    "resolution": "Raised the memory limit to 1Gi", "data_classification": "INTERNAL", "duplicate_of": None,
    "detected_at": "2026-03-19T15:20:00Z", "resolved_at": "2026-03-19T15:40:00Z",
    "created_at": "2026-03-19T15:20:01Z", "updated_at": "2026-03-19T15:40:00Z",
}


class IncidentEvent(Output):
    """One event of an incident's timeline, as the incident carries it."""

    id: str = Field(description="The event's id (a UUID)")
    type: EventType
    source: str = Field(description="What reported it (`incident-service` for the events the service writes)")
    message: str
    timestamp: Timestamp
    severity: EventSeverity | None
    details: JsonObject | None = Field(description="Free-form details (the service's own events name the `actor`)")


class IncidentSummary(Output):
    """An incident as lists show it: every field but its timeline."""

    model_config = examples(_SUMMARY)

    id: str = Field(description="The incident's id (a UUID)")
    name: str = Field(description="Its unique name, e.g. INC-20260319-001 (the key of its URL)")
    namespace: str
    title: str
    description: str
    severity: Severity
    status: Status
    category: str
    affected_services: list[str]
    affected_teams: list[str]
    assignee: str | None = Field(description="A username")
    reporter: str | None = Field(description="A username (the creator's when not given)")
    tags: list[str]
    root_cause: str
    resolution: str
    data_classification: Classification
    duplicate_of: str | None = Field(
        description="The name of the incident this one duplicates (null when none, or when the caller may not see it)")
    detected_at: Timestamp
    resolved_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class Incident(IncidentSummary):
    """An incident with its timeline, events in time order."""

    model_config = examples({**_SUMMARY, "timeline": [
        {"id": "0b7e2c1a-3f4d-4e5a-8b6c-9d0e1f2a3b4c", "severity": "high", "details": None, **_EVENTS[0]},
        {"id": "1c8f3d2b-4a5e-4f6b-9c7d-0e1f2a3b4c5d", "severity": None, **_EVENTS[2]}], "event_count": 2})

    timeline: list[IncidentEvent]
    event_count: int = Field(ge=0, description="The number of events in `timeline`")


class MatchingFactor(Output):
    """One factor of a match: its name, its weight in the score, its value and what matched."""

    factor: str = Field(description="text, semantic, services, category, namespace, severity, event_types; "
                                    "for a recommendation also known_fix, cause, feedback, near_duplicate, …")
    weight: float
    value: float = Field(description="Mostly 0-1 (`feedback` -1..1; `fix_evidence` a count)")
    detail: str = Field(description="What matched, in words")


_HIT = {**_SUMMARY, "id": "7d2e9b3c-1a4f-4b6d-8e0c-2f3a4b5c6d7e", "name": "INC-20260211-004",
        "detected_at": "2026-02-11T09:02:00Z", "resolved_at": "2026-02-11T09:50:00Z",
        "created_at": "2026-02-11T09:02:10Z", "updated_at": "2026-02-11T09:50:00Z", "event_count": 5, "score": 0.82,
        "matching_factors": [
            {"factor": "text", "weight": 0.45, "value": 1.0, "detail": "words in common"},
            {"factor": "services", "weight": 0.08, "value": 1.0, "detail": "shared services: payment-service"}]}


class SimilarIncident(IncidentSummary):
    """A similar incident: the incident without its timeline, its score and what matched."""

    model_config = examples(_HIT)

    event_count: int = Field(ge=0, description="The number of events in its timeline")
    score: float = Field(ge=0, le=1, description="How alike (0-1): text, meaning and structure fused")
    matching_factors: list[MatchingFactor]


class SimilarIncidents(Output):
    """The incidents most like one, best first."""

    model_config = examples({"incident": "INC-20260319-001", "results": [_HIT]})

    incident: str = Field(description="The name of the incident compared")
    results: list[SimilarIncident]


class IncidentTimelineEvent(Output):
    """One event of the timeline envelope; `severity` and `details` are left out when absent."""

    timestamp: Timestamp
    type: EventType
    source: str
    message: str
    severity: EventSeverity = _omitted("Left out when the event has none")
    details: JsonObject = _omitted("Free-form details; left out when the event has none")


class IncidentTimelineMetadata(Output):
    name: str = Field(description="The incident's unique name")
    namespace: str
    eventCount: int = Field(ge=0)


class IncidentTimeline(Output):
    """The documented IncidentTimeline envelope: the incident's events in time order."""

    model_config = examples({"apiVersion": "v1", "kind": "IncidentTimeline",
                             "metadata": {"name": "INC-20260319-001", "namespace": "production", "eventCount": 6},
                             "events": _EVENTS})

    apiVersion: Literal["v1"]
    kind: Literal["IncidentTimeline"]
    metadata: IncidentTimelineMetadata
    events: list[IncidentTimelineEvent]


class EventsAppended(Output):
    """What an append did: how many events it added and how many the timeline holds now."""

    model_config = examples({"name": "INC-20260319-001", "appended": 2, "eventCount": 8})

    name: str = Field(description="The incident's name")
    appended: int = Field(ge=1)
    eventCount: int = Field(ge=0, description="The events of its timeline, these included")
