from __future__ import annotations

import json
from enum import Enum
from typing import Any

from pydantic import Field, field_validator

from app.errors import ValidationFailed
from app.inputs import InputModel, JsonObject, StrList, UtcDatetime
from app.users.models import Classification

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
MAX_DETAILS_BYTES = 16_384


class Severity(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class Status(str, Enum):
    OPEN = "OPEN"
    INVESTIGATING = "INVESTIGATING"
    MITIGATED = "MITIGATED"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


RESOLVED_STATUSES = {Status.RESOLVED.value, Status.CLOSED.value}


class EventType(str, Enum):
    DETECTION = "Detection"
    ANALYSIS = "Analysis"
    RUNBOOK_MATCH = "RunbookMatch"
    APPROVAL_REQUIRED = "ApprovalRequired"
    NOTIFICATION = "Notification"
    MITIGATION = "Mitigation"
    RESOLUTION = "Resolution"
    COMMENT = "Comment"
    STATUS_CHANGE = "StatusChange"
    ESCALATION = "Escalation"


class EventSeverity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @classmethod
    def _missing_(cls, value: Any) -> "EventSeverity | None":
        """Any case is taken: `HIGH` is `high`."""
        return next((m for m in cls if isinstance(value, str) and m.value == value.lower()), None)


class TimelineEventIn(InputModel):
    timestamp: UtcDatetime | None = None
    type: EventType
    source: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=5000)
    severity: EventSeverity | None = None
    details: JsonObject | None = None

    @field_validator("details")
    @classmethod
    def _small(cls, v: dict | None) -> dict | None:
        if v is not None and len(json.dumps(v, default=str)) > MAX_DETAILS_BYTES:
            raise ValueError(f"details must serialise to at most {MAX_DETAILS_BYTES} bytes")
        return v


class EventsAppend(InputModel):
    """`{"events": [...]}`, or one event object on its own (taken as a list of one)."""

    events: list[TimelineEventIn] = Field(min_length=1, max_length=500)

    ALSO = (TimelineEventIn,)

    @classmethod
    def reshape(cls, data: dict[str, Any]) -> dict[str, Any]:
        """One event object is taken as a list of one."""
        return {"events": [data]} if "events" not in data and "type" in data else data


class IncidentCreate(InputModel):
    name: str | None = Field(None, pattern=NAME_PATTERN)
    namespace: str = Field("default", pattern=NAMESPACE_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20_000)
    severity: Severity = Severity.MEDIUM
    status: Status = Status.OPEN
    category: str = Field("", max_length=100)
    affected_services: StrList = Field(default_factory=list, max_length=100)
    affected_teams: StrList = Field(default_factory=list, max_length=100)
    assignee: str | None = Field(None, max_length=150)
    reporter: str | None = Field(None, max_length=150)
    tags: StrList = Field(default_factory=list, max_length=100)
    root_cause: str = Field("", max_length=20_000)
    resolution: str = Field("", max_length=20_000)
    detected_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    data_classification: Classification = Classification.INTERNAL
    timeline: list[TimelineEventIn] = Field(default_factory=list, max_length=500)


class IncidentUpdate(InputModel):
    """A partial update: only the fields sent change; `null` is refused for required fields."""

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    severity: Severity | None = None
    status: Status | None = None
    category: str | None = Field(None, max_length=100)
    affected_services: StrList | None = Field(None, max_length=100)
    affected_teams: StrList | None = Field(None, max_length=100)
    assignee: str | None = Field(None, max_length=150)
    reporter: str | None = Field(None, max_length=150)
    tags: StrList | None = Field(None, max_length=100)
    root_cause: str | None = Field(None, max_length=20_000)
    resolution: str | None = Field(None, max_length=20_000)
    detected_at: UtcDatetime | None = None
    data_classification: Classification | None = None

    def changes(self) -> dict[str, Any]:
        sent = self.model_dump(exclude_unset=True, mode="python")
        nullable = {"assignee", "reporter"}
        bad = [k for k, v in sent.items() if v is None and k not in nullable]
        if bad:
            raise ValidationFailed("These fields may not be null", [{"field": k, "message": "may not be null"} for k in bad])
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in sent.items()}


class IncidentResolve(InputModel):
    resolution: str = Field(min_length=1, max_length=20_000)
    root_cause: str | None = Field(None, max_length=20_000)
    resolved_at: UtcDatetime | None = None
    source: str | None = Field(None, min_length=1, max_length=100)  # default: the service's own source



class IncidentMarkDuplicate(InputModel):
    """Close an incident as a duplicate of another one (named as in the URL: its name)."""

    duplicate_of: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
