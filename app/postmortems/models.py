"""Postmortem inputs: the documented create body, PUT (every field) and PATCH (only those sent)."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from app.errors import ValidationFailed
from app.incidents.models import Severity
from app.inputs import InputModel, JsonList, StrList, UtcDatetime, http_link
from app.users.models import Classification
from app.webhooks.events import EVENTS


class PostmortemStatus(str, Enum):
    DRAFT = "DRAFT"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    PUBLISHED = "PUBLISHED"
    ARCHIVED = "ARCHIVED"


# The six sections a complete postmortem holds (completion_percentage: the share complete, service.complete_sections).
REQUIRED_SECTIONS = ("executive_summary", "timeline", "root_cause_analysis", "impact_assessment", "lessons_learned",
                     "action_items")
TEXT_MAX = 50_000
ITEMS_MAX = 500


class ActionItemStatus(str, Enum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    WONT_DO = "WONT_DO"


class ActionItemPriority(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


# An action item counts as settled (never overdue) in these statuses.
SETTLED_ITEM_STATUSES = (ActionItemStatus.DONE.value, ActionItemStatus.WONT_DO.value)


def _item_id(value: str | None) -> str | None:
    return None if value is None else str(uuid.UUID(value))


class Automation(InputModel):
    """What creating an action item starts: `webhook_event`, the webhook event a workflow listens to (one of
    app/webhooks/events.py EVENTS); or `runbook`, the http(s) URL of a runbook to run. It goes with the item in
    the `action_item.created` (and `action_item.overdue`) deliveries."""

    kind: Literal["webhook_event", "runbook"]
    target: str = Field(min_length=1, max_length=2048)

    @model_validator(mode="after")
    def _target(self) -> "Automation":
        if self.kind == "webhook_event" and self.target not in EVENTS:
            raise ValueError(f"a webhook_event automation names one of {', '.join(EVENTS)}")
        if self.kind == "runbook":
            http_link(self.target)
        return self


class ActionItem(InputModel):
    """One tracked action item: the documented fields plus a stable `id` (kept when sent, assigned
    when missing) and a `status`."""

    id: str | None = Field(None, max_length=64)
    title: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=TEXT_MAX)
    priority: ActionItemPriority = ActionItemPriority.MEDIUM
    assignee: str | None = Field(None, max_length=200)
    due_date: UtcDatetime | None = None
    category: str = Field("", max_length=100)
    status: ActionItemStatus = ActionItemStatus.OPEN
    automation: Automation | None = None

    _id = field_validator("id")(_item_id)


def _unique_item_ids(items: list[ActionItem]) -> list[ActionItem]:
    ids = [i.id for i in items if i.id]
    if len(ids) != len(set(ids)):
        raise ValueError("action item ids must be unique")
    return items


ActionItems = Annotated[list[ActionItem], AfterValidator(_unique_item_ids)]


class ActionItemUpdate(InputModel):
    """PATCH of one action item: only the fields sent change; `null` only for assignee, due_date and automation."""

    title: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, max_length=TEXT_MAX)
    priority: ActionItemPriority | None = None
    assignee: str | None = Field(None, max_length=200)
    due_date: UtcDatetime | None = None
    category: str | None = Field(None, max_length=100)
    status: ActionItemStatus | None = None
    automation: Automation | None = None


ITEM_NULLABLE = {"assignee", "due_date", "automation"}


def item_doc(item: ActionItem) -> dict[str, Any]:
    """The stored form of an action item, with an id assigned when it has none."""
    out = {k: (v.value if isinstance(v, Enum) else v) for k, v in item.model_dump(mode="python").items()}
    out["id"] = out["id"] or str(uuid.uuid4())
    return out


class PostmortemContent(InputModel):
    """PUT: every editable field; those left out get their defaults (the incident never changes)."""

    title: str = Field(min_length=1, max_length=200)
    executive_summary: str = Field("", max_length=TEXT_MAX)
    timeline: JsonList = Field(default_factory=list, max_length=ITEMS_MAX)
    root_cause_analysis: str = Field("", max_length=TEXT_MAX)
    impact_assessment: str = Field("", max_length=TEXT_MAX)
    lessons_learned: str = Field("", max_length=TEXT_MAX)
    action_items: ActionItems = Field(default_factory=list, max_length=ITEMS_MAX)
    severity: Severity | None = None  # default: the incident's
    owner: str | None = None  # a user id; default: the creator (PUT: unchanged)
    reviewers: StrList = Field(default_factory=list, max_length=50)
    approver: str | None = None
    due_date: UtcDatetime | None = None  # default: from severity (settings.postmortem_due_days)
    related_incidents: StrList = Field(default_factory=list, max_length=100)
    affected_services: StrList = Field(default_factory=list, max_length=100)
    affected_teams: StrList = Field(default_factory=list, max_length=100)
    data_classification: Classification | None = None  # default: the incident's


# What a whole-list writer of `action_items` read: the postmortem's `action_items_version` (see
# service.action_items_version). Sent with PUT or a PATCH carrying `action_items`, the write applies only
# while the list is still the one read (409 `ACTION_ITEMS_CHANGED` otherwise).
ITEMS_VERSION_MAX = 64
ITEMS_VERSION_HELP = ("With `action_items`: the `action_items_version` read. The list is written only while it is "
                      "still the one read (ACTION_ITEMS_CHANGED); required once items are edited one by one "
                      "(ACTION_ITEMS_VERSION_REQUIRED).")


class PostmortemCreate(PostmortemContent):
    incident: str = Field(min_length=1, max_length=100)  # the incident's id


class PostmortemReplace(PostmortemContent):
    """PUT: every editable field, and the `action_items_version` the writer read (the list is written whole)."""

    action_items_version: str | None = Field(None, max_length=ITEMS_VERSION_MAX, description=ITEMS_VERSION_HELP)


class PostmortemUpdate(InputModel):
    """PATCH: only the fields sent change; `null` is refused except for approver and due_date."""

    title: str | None = Field(None, min_length=1, max_length=200)
    executive_summary: str | None = Field(None, max_length=TEXT_MAX)
    timeline: JsonList | None = Field(None, max_length=ITEMS_MAX)
    root_cause_analysis: str | None = Field(None, max_length=TEXT_MAX)
    impact_assessment: str | None = Field(None, max_length=TEXT_MAX)
    lessons_learned: str | None = Field(None, max_length=TEXT_MAX)
    action_items: ActionItems | None = Field(None, max_length=ITEMS_MAX)
    severity: Severity | None = None
    owner: str | None = None
    reviewers: StrList | None = Field(None, max_length=50)
    approver: str | None = None
    due_date: UtcDatetime | None = None
    related_incidents: StrList | None = Field(None, max_length=100)
    affected_services: StrList | None = Field(None, max_length=100)
    affected_teams: StrList | None = Field(None, max_length=100)
    data_classification: Classification | None = None
    action_items_version: str | None = Field(None, max_length=ITEMS_VERSION_MAX, description=ITEMS_VERSION_HELP)


NULLABLE = {"approver", "due_date", "action_items_version"}
CONDITIONS = {"action_items_version"}  # preconditions of a write, never stored


def items_version_sent(model: BaseModel) -> str | None:
    """The `action_items_version` a whole-list writer sent (None when not sent)."""
    return getattr(model, "action_items_version", None)


def plain_changes(model: BaseModel, *, replace: bool) -> dict[str, Any]:
    sent = model.model_dump(mode="python", exclude_unset=not replace, exclude=CONDITIONS)
    if not replace:
        bad = [k for k, v in sent.items() if v is None and k not in NULLABLE]
        if bad:
            raise ValidationFailed("These fields may not be null",
                                   [{"field": k, "message": "may not be null"} for k in bad])
    out = {k: (v.value if isinstance(v, Enum) else v) for k, v in sent.items()}
    if out.get("action_items") is not None:
        out["action_items"] = [item_doc(i) for i in getattr(model, "action_items")]
    return out


def item_changes(model: ActionItemUpdate) -> dict[str, Any]:
    sent = model.model_dump(mode="python", exclude_unset=True)
    bad = [k for k, v in sent.items() if v is None and k not in ITEM_NULLABLE]
    if bad:
        raise ValidationFailed("These fields may not be null",
                               [{"field": k, "message": "may not be null"} for k in bad])
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in sent.items()}


class GenerateAutomatedRequest(InputModel):
    """The optional body of `generate_automated/`."""

    force: bool = False


class GenerationStatus(str, Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REVIEW_REQUIRED = "REVIEW_REQUIRED"


# A generation in one of these statuses is finished: it changes again only when retried.
FINISHED_GENERATION_STATUSES = (GenerationStatus.COMPLETED.value, GenerationStatus.FAILED.value,
                                GenerationStatus.REVIEW_REQUIRED.value)


class GenerationTrigger(str, Enum):
    MANUAL = "manual"
    INCIDENT_RESOLVED = "incident_resolved"
    SCHEDULED = "scheduled"
    COMMAND = "command"


class GenerationRequest(InputModel):
    """The documented body of `postmortem-generations/generate_postmortem/` (plus `force`)."""

    incident_id: str = Field(min_length=1, max_length=100)
    include_timeline: bool = True
    include_logs: bool = True
    generation_trigger: GenerationTrigger = GenerationTrigger.MANUAL
    force: bool = Field(False, description="Re-draft sections a person edited, and a postmortem drafted before.")
