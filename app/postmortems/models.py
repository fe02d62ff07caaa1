"""Postmortem inputs: the documented create body, PUT (every field) and PATCH (only those sent)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import ValidationFailed
from app.incidents.models import Severity
from app.inputs import JsonList, StrList, UtcDatetime
from app.users.models import Classification


class PostmortemStatus(str, Enum):
    DRAFT = "DRAFT"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    PUBLISHED = "PUBLISHED"
    ARCHIVED = "ARCHIVED"


# The six sections a complete postmortem holds (completion_percentage is the share with real content).
REQUIRED_SECTIONS = ("executive_summary", "timeline", "root_cause_analysis", "impact_assessment", "lessons_learned",
                     "action_items")
TEXT_MAX = 50_000
ITEMS_MAX = 500


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PostmortemContent(_Input):
    """PUT: every editable field; those left out get their defaults (the incident never changes)."""

    title: str = Field(min_length=1, max_length=200)
    executive_summary: str = Field("", max_length=TEXT_MAX)
    timeline: JsonList = Field(default_factory=list, max_length=ITEMS_MAX)
    root_cause_analysis: str = Field("", max_length=TEXT_MAX)
    impact_assessment: str = Field("", max_length=TEXT_MAX)
    lessons_learned: str = Field("", max_length=TEXT_MAX)
    action_items: JsonList = Field(default_factory=list, max_length=ITEMS_MAX)
    severity: Severity | None = None  # default: the incident's
    owner: str | None = None  # a user id; default: the creator (PUT: unchanged)
    reviewers: StrList = Field(default_factory=list, max_length=50)
    approver: str | None = None
    due_date: UtcDatetime | None = None  # default: from severity (settings.postmortem_due_days)
    related_incidents: StrList = Field(default_factory=list, max_length=100)
    affected_services: StrList = Field(default_factory=list, max_length=100)
    affected_teams: StrList = Field(default_factory=list, max_length=100)
    data_classification: Classification | None = None  # default: the incident's


class PostmortemCreate(PostmortemContent):
    incident: str = Field(min_length=1, max_length=100)  # the incident's id


class PostmortemUpdate(_Input):
    """PATCH: only the fields sent change; `null` is refused except for approver and due_date."""

    title: str | None = Field(None, min_length=1, max_length=200)
    executive_summary: str | None = Field(None, max_length=TEXT_MAX)
    timeline: JsonList | None = Field(None, max_length=ITEMS_MAX)
    root_cause_analysis: str | None = Field(None, max_length=TEXT_MAX)
    impact_assessment: str | None = Field(None, max_length=TEXT_MAX)
    lessons_learned: str | None = Field(None, max_length=TEXT_MAX)
    action_items: JsonList | None = Field(None, max_length=ITEMS_MAX)
    severity: Severity | None = None
    owner: str | None = None
    reviewers: StrList | None = Field(None, max_length=50)
    approver: str | None = None
    due_date: UtcDatetime | None = None
    related_incidents: StrList | None = Field(None, max_length=100)
    affected_services: StrList | None = Field(None, max_length=100)
    affected_teams: StrList | None = Field(None, max_length=100)
    data_classification: Classification | None = None


NULLABLE = {"approver", "due_date"}


def plain_changes(model: BaseModel, *, replace: bool) -> dict[str, Any]:
    sent = model.model_dump(mode="python", exclude_unset=not replace)
    if not replace:
        bad = [k for k, v in sent.items() if v is None and k not in NULLABLE]
        if bad:
            raise ValidationFailed("These fields may not be null",
                                   [{"field": k, "message": "may not be null"} for k in bad])
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in sent.items()}
