"""What the postmortem REST routes answer (app/postmortems/rest.py): the output models the OpenAPI document is
generated from. They describe the serializers' JSON exactly (`serialize`, `serialize_generations`, and the
bodies the actions build); they never build a response. Examples come from the API documentation, completed
with the fields the service writes beside the documented ones."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.incidents.models import Severity
from app.outputs import JsonObject, Output, Timestamp, examples
from app.postmortems.models import (ActionItemPriority, ActionItemStatus, GenerationStatus, GenerationTrigger,
                                    PostmortemStatus)
from app.users.models import Classification

# --- postmortems ----------------------------------------------------------------------------------

SUMMARY_EXAMPLE = {
    "id": "uuid",
    "title": "Postmortem: Database Outage",
    "incident": "uuid",
    "incident_title": "Database Connection Timeout",
    "status": "PUBLISHED",
    "severity": "HIGH",
    "owner_username": "john.doe",
    "completion_percentage": 95.0,
    "is_overdue": False,
    "created_at": "2024-01-15T10:30:00Z",
    "due_date": "2024-01-22T10:30:00Z",
}

ACTION_ITEM_EXAMPLE = {
    "id": "0b6f3a52-52d4-4a55-9d0c-1c1f0f7a2b11",
    "title": "Update database connection pool settings",
    "description": "Increase connection pool size to handle peak load",
    "priority": "HIGH",
    "assignee": "database.team",
    "due_date": "2024-01-29T00:00:00Z",
    "category": "Technical Improvement",
    "status": "OPEN",
    "automation": {"kind": "runbook", "target": "https://runbooks.example.com/db/pool-resize"},
}

DETAIL_EXAMPLE = {
    "id": "uuid",
    "title": "Postmortem: Database Outage",
    "incident": "uuid",
    "incident_title": "Database Connection Timeout",
    "executive_summary": "On January 15, 2024, a high severity incident occurred...",
    "timeline": [{"timestamp": "2024-01-15T10:30:00Z", "event": "Incident reported",
                  "description": "Database connection timeout detected", "actor": "monitoring.system"}],
    "root_cause_analysis": "The root cause was identified as...",
    "impact_assessment": "The incident affected 500 users...",
    "lessons_learned": "Key lessons learned include...",
    "action_items": [ACTION_ITEM_EXAMPLE],
    "action_items_version": "5d41402abc4b2a76b9719d911017c592",
    "is_automated": True,
    "generation_confidence": 0.85,
    "auto_generated_sections": ["executive_summary", "timeline", "root_cause_analysis"],
    "status": "PUBLISHED",
    "severity": "HIGH",
    "owner": "uuid",
    "owner_username": "john.doe",
    "reviewers": ["uuid1", "uuid2"],
    "reviewer_usernames": ["jane.smith", "bob.wilson"],
    "approver": "uuid",
    "approver_username": "alice.johnson",
    "data_classification": "INTERNAL",
    "knowledge_article": {"id": "uuid", "slug": "postmortem-database-outage"},
    "created_at": "2024-01-15T10:30:00Z",
    "updated_at": "2024-01-16T14:20:00Z",
    "published_at": "2024-01-16T14:20:00Z",
    "due_date": "2024-01-22T10:30:00Z",
    "related_incidents": ["uuid1", "uuid2"],
    "affected_services": ["database", "api"],
    "affected_teams": ["database.team", "platform.team"],
    "completion_percentage": 95.0,
    "is_overdue": False,
}


class PostmortemSummary(Output):
    """A postmortem as a list shows it."""

    model_config = examples(SUMMARY_EXAMPLE)

    id: str
    title: str
    incident: str = Field(description="The incident's id")
    incident_title: str | None = Field(description="The incident's title (null when the caller may not see it)")
    status: PostmortemStatus
    severity: Severity
    owner_username: str | None = Field(description="The owner's username (null when the user no longer exists)")
    completion_percentage: float = Field(ge=0, le=100, description="The share of the six required sections "
                                                                   "that are complete, one decimal")
    is_overdue: bool = Field(description="Past its due date and not yet published or archived")
    created_at: Timestamp
    due_date: Timestamp | None


class ActionItemAutomation(Output):
    """What creating the item starts: a webhook event a workflow listens to, or a runbook URL to run."""

    kind: Literal["webhook_event", "runbook"]
    target: str = Field(description="The event name (webhook_event) or the runbook's http(s) URL (runbook)")


class PostmortemActionItem(Output):
    """One tracked action item."""

    model_config = examples(ACTION_ITEM_EXAMPLE)

    id: str = Field(description="Stable id, for `action_items/{item_id}/`")
    title: str
    description: str
    priority: ActionItemPriority
    assignee: str | None
    due_date: Timestamp | None
    category: str
    status: ActionItemStatus
    automation: ActionItemAutomation | None = Field(description="Sent with the item in the action_item.created "
                                                                "and action_item.overdue webhook deliveries")


class PostmortemArticleLink(Output):
    """The knowledge-base article a published postmortem became."""

    id: str
    slug: str


class Postmortem(Output):
    """A postmortem in full: its sections, its people, its workflow state and the derived fields."""

    model_config = examples(DETAIL_EXAMPLE)

    id: str
    title: str
    incident: str = Field(description="The incident's id")
    incident_title: str | None = Field(description="The incident's title (null when the caller may not see it)")
    executive_summary: str
    timeline: list[Any] = Field(description="Timeline entries, as written (usually objects with `timestamp`, "
                                            "`event`, `description`, `actor`)")
    root_cause_analysis: str
    impact_assessment: str
    lessons_learned: str
    action_items: list[PostmortemActionItem]
    action_items_version: str = Field(description="The version of `action_items` to send back with a write of "
                                                  "the whole list (PUT, or a PATCH carrying `action_items`)")
    is_automated: bool
    generation_confidence: float | None = Field(description="0-1, of the last automated draft (null when never "
                                                            "drafted)")
    auto_generated_sections: list[str] = Field(description="The sections the last automated draft wrote and "
                                                           "nobody edited since")
    status: PostmortemStatus
    severity: Severity
    owner: str = Field(description="The owner's user id")
    owner_username: str | None
    reviewers: list[str] = Field(description="User ids")
    reviewer_usernames: list[str]
    approver: str | None = Field(description="The approver's user id")
    approver_username: str | None
    data_classification: Classification
    knowledge_article: PostmortemArticleLink | None = Field(description="The article it was published as (null "
                                                                        "until then)")
    created_at: Timestamp
    updated_at: Timestamp
    published_at: Timestamp | None
    due_date: Timestamp | None
    related_incidents: list[str] = Field(description="Incident ids")
    affected_services: list[str]
    affected_teams: list[str]
    completion_percentage: float = Field(ge=0, le=100, description="The share of the six required sections "
                                                                   "that are complete, one decimal")
    is_overdue: bool = Field(description="Past its due date and not yet published or archived")


class PostmortemsByStatus(Output):
    """How many postmortems are in each status."""

    DRAFT: int
    IN_REVIEW: int
    APPROVED: int
    PUBLISHED: int
    ARCHIVED: int


class PostmortemsBySeverity(Output):
    """How many postmortems are of each severity."""

    LOW: int
    MEDIUM: int
    HIGH: int
    CRITICAL: int


class PostmortemStatistics(Output):
    """Figures over the postmortems the caller may see."""

    model_config = examples({
        "total_postmortems": 150,
        "by_status": {"DRAFT": 25, "IN_REVIEW": 15, "APPROVED": 20, "PUBLISHED": 85, "ARCHIVED": 5},
        "by_severity": {"LOW": 10, "MEDIUM": 45, "HIGH": 70, "CRITICAL": 25},
        "automated_percentage": 75.5,
        "overdue_count": 8,
        "avg_completion_time": "5 days, 12:30:00",
        "overdue_action_items": 12,
    })

    total_postmortems: int
    by_status: PostmortemsByStatus
    by_severity: PostmortemsBySeverity
    automated_percentage: float = Field(description="The share drafted automatically, 0-100, one decimal")
    overdue_count: int = Field(description="Postmortems past their due date, not yet published or archived")
    avg_completion_time: str | None = Field(description="Mean time from creation to publication, as "
                                                        "`D days, HH:MM:SS` (null when none is published)")
    overdue_action_items: int = Field(description="Action items past their due date, neither DONE nor WONT_DO")


class AutomatedDraftResult(Output):
    """What `generate_automated/` answers once the sections are drafted."""

    model_config = examples({"message": "Postmortem generated successfully", "confidence_score": 0.85})

    message: str
    confidence_score: float = Field(description="The draft's confidence, 0-1")


# --- generation logs ------------------------------------------------------------------------------

class PostmortemGenerationStarted(Output):
    """A generation started (or restarted), or the incident's one already in progress."""

    model_config = examples({"message": "Postmortem generation initiated", "generation_id": "uuid",
                             "status": "PENDING"})

    message: str
    generation_id: str
    status: GenerationStatus


class PostmortemGenerationError(Output):
    """An earlier failure of a generation that was retried."""

    error: str | None
    at: Timestamp | None


class PostmortemGeneration(Output):
    """A generation log: what was asked, how the run went, and what it drafted."""

    model_config = examples({
        "id": "uuid", "incident": "uuid", "incident_title": "Database Connection Timeout", "status": "COMPLETED",
        "generation_trigger": "manual", "include_timeline": True, "include_logs": True, "force": False,
        "generated_postmortem": "uuid", "postmortem_created": True,
        "generated_sections": ["executive_summary", "timeline", "root_cause_analysis", "impact_assessment",
                               "lessons_learned", "action_items"],
        "kept_sections": [], "unsupported_facts": [], "errors": [],
        "evidence": {"timeline_events": 4, "log_excerpts": 1, "root_cause_known": True, "generation_ms": 84.2},
        "draft": None, "confidence_score": 0.85, "processing_time": 0.091, "attempts": 1,
        "model_version": "rules-1", "error_message": None, "review_reason": None,
        "requested_by_username": "john.doe", "data_classification": "INTERNAL",
        "created_at": "2024-01-15T12:05:00Z", "started_at": "2024-01-15T12:05:01Z",
        "completed_at": "2024-01-15T12:05:01.091000Z", "updated_at": "2024-01-15T12:05:01.091000Z",
    })

    id: str
    incident: str = Field(description="The incident's id")
    incident_title: str | None = Field(description="The incident's title (null when the caller may not see it)")
    status: GenerationStatus
    generation_trigger: GenerationTrigger
    include_timeline: bool
    include_logs: bool
    force: bool
    generated_postmortem: str | None = Field(description="The postmortem drafted (null until the run gets to it)")
    postmortem_created: bool | None = Field(description="Whether the run created the postmortem (null until "
                                                        "finished)")
    generated_sections: list[str]
    kept_sections: list[str] = Field(description="Sections a person edited, left as they were")
    unsupported_facts: list[str] = Field(description="What the draft named that the incident data does not "
                                                     "hold (the draft was then not written)")
    errors: list[PostmortemGenerationError] = Field(description="Earlier failures, one per retry")
    evidence: JsonObject = Field(description="What the draft was built from and how well supported each "
                                             "section is")
    draft: JsonObject | None = Field(description="The draft kept for a reviewer when it failed the fact check")
    confidence_score: float | None
    processing_time: float | None = Field(description="Seconds the last run took")
    attempts: int
    model_version: str
    error_message: str | None
    review_reason: str | None = Field(description="Why it needs a review (REVIEW_REQUIRED)")
    requested_by_username: str | None
    data_classification: Classification
    created_at: Timestamp
    started_at: Timestamp | None
    completed_at: Timestamp | None
    updated_at: Timestamp
