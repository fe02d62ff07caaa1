"""What `GET /api/v1/incidents/{name}/predictions/` answers (app/predictions/rest.py), for the OpenAPI document."""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from app.outputs import Output, Timestamp, examples

EXAMPLE = {
    "incident": "INC-20261205-004", "status": "INVESTIGATING", "generated_at": "2026-12-05T23:40:00Z",
    "reported_category": "Database",
    "likely_root_causes": [{"category": "Database", "probability": 0.71, "look_alikes": 6},
                           {"category": "Infrastructure", "probability": 0.18, "look_alikes": 2}],
    "time_to_resolve": {"p50": 5400, "p90": 14400, "samples": 9, "elapsed": 1800, "explanation": None},
    "based_on": {"incidents": [{"name": "INC-20260211-002", "title": "Connection pool exhausted on orders-db",
                                "category": "Database", "score": 0.82, "time_to_resolve": 4200}],
                 "patterns": [{"id": "uuid", "name": "Connection pool exhaustion", "pattern_type": "ROOT_CAUSE",
                               "matched_by": "look-alike among its sources"}]},
    "confidence": {"level": "MEDIUM", "look_alikes": 8,
                   "explanation": "8 resolved look-alikes; the most likely category is at 71%."}}


class LikelyCause(Output):
    model_config = examples(EXAMPLE["likely_root_causes"][0])

    category: str
    probability: float = Field(ge=0, le=1)
    look_alikes: int = Field(description="How many of the look-alikes were of this category")


class TimeToResolve(Output):
    model_config = examples(EXAMPLE["time_to_resolve"])

    p50: int | None = Field(description="Seconds from detection to resolution, the median (null: too few samples)")
    p90: int | None
    samples: int = Field(description="Resolution times it rests on (look-alikes, and matched patterns' sources)")
    elapsed: int | None = Field(description="Seconds since this incident was detected")
    explanation: str | None


class BasedOnIncident(Output):
    model_config = examples(EXAMPLE["based_on"]["incidents"][0])

    name: str
    title: str
    category: str | None
    score: float = Field(ge=0, le=1)
    time_to_resolve: int | None


class BasedOnPattern(Output):
    model_config = examples(EXAMPLE["based_on"]["patterns"][0])

    id: str
    name: str
    pattern_type: str | None
    matched_by: str


class BasedOn(Output):
    model_config = examples(EXAMPLE["based_on"])

    incidents: list[BasedOnIncident]
    patterns: list[BasedOnPattern]


class Level(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Confidence(Output):
    model_config = examples(EXAMPLE["confidence"])

    level: Level
    look_alikes: int
    explanation: str


class Prediction(Output):
    """What an incident in flight will likely turn out to be, how long it will likely take, what that rests on
    and how sure it is (computed from what the incident says now)."""

    model_config = examples(EXAMPLE)

    incident: str
    status: str | None
    generated_at: Timestamp
    reported_category: str | None = Field(description="The category the incident was reported with (not used as "
                                                      "evidence: it is what is predicted)")
    likely_root_causes: list[LikelyCause]
    time_to_resolve: TimeToResolve
    based_on: BasedOn
    confidence: Confidence
