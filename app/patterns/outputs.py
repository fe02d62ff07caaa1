"""What the learning-pattern routes answer (app/patterns/rest.py): the output models of the OpenAPI document
(app/outputs.py). They describe the serializers' JSON; they are not used to build it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.outputs import JsonObject, Output, Timestamp, examples
from app.patterns.models import PatternType
from app.patterns.run_records import RunStatus, RunTrigger
from app.users.models import Classification

# A calendar date as the API writes it: `2024-01-15`.
Date = Annotated[str, Field(json_schema_extra={"format": "date"}, examples=["2024-01-15"])]


class LearningPatternHistoryEntry(Output):
    """One change to the pattern made after it was validated: what the changed fields were before it."""

    at: Timestamp
    by: str = Field(description="The id of the user (or service account) who made the change")
    action: str = Field(description="`update`, `merge <other pattern id>` or `mining run`")
    before: JsonObject = Field(description="The changed fields as they were before (sources only as far as the "
                                           "reader may see them)")


class LearningPattern(Output):
    """A recurring cause, fix or prevention learned from incidents."""

    model_config = examples({
        "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Database connection pool exhaustion",
        "pattern_type": "ROOT_CAUSE", "description": "Connection pools run dry under peak load...",
        "frequency": 5, "success_rate": 0.8, "confidence_score": 0.75, "is_validated": True,
        "validated_by": "8d1e4f2a-0b3c-4d5e-8f9a-1b2c3d4e5f60",
        "validation_notes": "This pattern has been validated by the expert team", "times_applied": 3,
        "data_classification": "INTERNAL", "triggers": ["connection timeout", "pool exhausted"],
        "actions": ["Increase the connection pool size"], "outcomes": ["Connections recovered"],
        "last_applied": "2024-02-01T09:00:00Z", "validated_at": "2024-01-20T12:00:00Z",
        "created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-02-01T09:00:00Z",
        "validated_by_username": "alice.johnson", "source_incidents": ["uuid1", "uuid2"], "source_postmortems": [],
        "history": []})

    id: str
    name: str
    pattern_type: PatternType
    description: str
    frequency: int = Field(description="Distinct source incidents (unless an admin set another figure)")
    success_rate: float = Field(description="0.0-1.0")
    confidence_score: float = Field(description="0.0-1.0")
    is_validated: bool
    validated_by: str | None = Field(description="User id")
    validation_notes: str
    times_applied: int
    data_classification: Classification
    triggers: list[str]
    actions: list[str]
    outcomes: list[str]
    last_applied: Timestamp | None
    validated_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    validated_by_username: str | None
    source_incidents: list[str] = Field(description="Incident ids, those the reader may see")
    source_postmortems: list[str] = Field(description="Postmortem ids, those the reader may see")
    history: list[LearningPatternHistoryEntry] = Field(description="Changes since it was validated, oldest first "
                                                                   "(those the reader may read)")


class LearningPatternCountsByType(Output):
    """Patterns of each type (every type, 0 when none)."""

    ROOT_CAUSE: int
    RESOLUTION: int
    PREVENTION: int
    DETECTION: int
    ESCALATION: int


class LearningPatternSuccessByType(Output):
    """The mean success rate of the patterns of each type (null: no pattern of that type)."""

    ROOT_CAUSE: float | None
    RESOLUTION: float | None
    PREVENTION: float | None
    DETECTION: float | None
    ESCALATION: float | None


class MostAppliedPattern(Output):
    id: str
    name: str
    times_applied: int


class PatternWeek(Output):
    week: Date = Field(description="The Monday the week starts on")
    occurrences: int


class PatternWeeklyOccurrences(Output):
    """How many of a pattern's source incidents happened each week of the window (weeks with none left out)."""

    pattern: str = Field(description="The pattern's id")
    name: str
    weeks: list[PatternWeek]


class LearningPatternStatistics(Output):
    """Learning-pattern figures over the patterns the caller may see."""

    model_config = examples({
        "total_patterns": 12,
        "by_type": {"ROOT_CAUSE": 5, "RESOLUTION": 3, "PREVENTION": 2, "DETECTION": 1, "ESCALATION": 1},
        "validated_count": 7, "validated_share": 0.5833,
        "most_applied": [{"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                          "name": "Database connection pool exhaustion", "times_applied": 3}],
        "average_success_rate_by_type": {"ROOT_CAUSE": 0.72, "RESOLUTION": 0.8, "PREVENTION": 0.65,
                                         "DETECTION": 0.5, "ESCALATION": None},
        "weekly_occurrences": [{"pattern": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                                "name": "Database connection pool exhaustion",
                                "weeks": [{"week": "2024-01-08", "occurrences": 2},
                                          {"week": "2024-01-15", "occurrences": 1}]}],
        "window_weeks": 12})

    total_patterns: int
    by_type: LearningPatternCountsByType
    validated_count: int
    validated_share: float = Field(description="validated_count / total_patterns (0 when there are none)")
    most_applied: list[MostAppliedPattern] = Field(description="The 5 most applied (of those applied at all)")
    average_success_rate_by_type: LearningPatternSuccessByType
    weekly_occurrences: list[PatternWeeklyOccurrences] = Field(
        description="For each pattern with source incidents in the window, by when they happened (`detected_at`)")
    window_weeks: int = Field(description="The window, in weeks (`?weeks=`)")


class MiningRunCounts(Output):
    """How many patterns the run created, updated and left unchanged."""

    created: int
    updated: int
    unchanged: int
    not_created_no_fix: int = Field(0, description="New groups not created because none of their incidents "
                                                   "records a fix (absent on runs recorded before it was counted)")


class MiningRunPattern(Output):
    """One pattern the run looked at."""

    pattern_id: str | None = Field(description="null when it was not created")
    action: Literal["created", "updated", "unchanged", "not created: no fix recorded"]
    pattern_type: PatternType
    name: str
    frequency: int
    confidence_score: float


class MiningRun(Output):
    """A run of pattern mining (the command, the workers' schedule or an admin's request) and its outcome."""

    model_config = examples({
        "id": "0e7b6a3c-2f1d-4c5b-9a8e-7d6c5b4a3f2e", "status": "COMPLETED", "trigger": "schedule", "days": 30,
        "min_frequency": 3, "incidents": 200, "eligible": 160, "duplicates_skipped": 40,
        "counts": {"created": 2, "updated": 1, "unchanged": 0, "not_created_no_fix": 1},
        "patterns": [{"pattern_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "action": "created",
                      "pattern_type": "ROOT_CAUSE", "name": "Database connection pool exhaustion", "frequency": 5,
                      "confidence_score": 0.75}],
        "processing_time": 12.481, "error_message": None, "data_classification": "INTERNAL",
        "started_at": "2024-01-15T03:00:00Z", "claimed_at": "2024-01-15T03:00:00Z",
        "completed_at": "2024-01-15T03:00:12.481000Z", "leased_until": None, "requested_by": None,
        "requested_by_username": None})

    id: str
    status: RunStatus
    trigger: RunTrigger
    days: int = Field(description="The window: incidents resolved in the last `days` days")
    min_frequency: int
    incidents: int | None = Field(description="Incidents resolved in the window (null until it completes)")
    eligible: int | None = Field(description="Resolved incidents with a cause, duplicates once (null until it "
                                             "completes)")
    duplicates_skipped: int | None
    counts: MiningRunCounts | None
    patterns: list[MiningRunPattern] | None = Field(description="The patterns it looked at (the first 500)")
    processing_time: float | None = Field(description="Seconds")
    error_message: str | None = Field(description="Why it failed")
    data_classification: Classification = Field(description="The most secret of the incidents it looked at")
    started_at: Timestamp
    claimed_at: Timestamp | None
    completed_at: Timestamp | None
    leased_until: Timestamp | None = Field(description="While it runs: when it is taken as dead unless renewed")
    requested_by: str | None = Field(description="The admin who asked for it (GraphQL), as a user id")
    requested_by_username: str | None
