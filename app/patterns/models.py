"""Learning-pattern inputs: the documented fields an admin writes, validation, application and merging."""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from app.inputs import InputModel, StrList
from app.users.models import Classification


class PatternType(str, Enum):
    ROOT_CAUSE = "ROOT_CAUSE"
    RESOLUTION = "RESOLUTION"
    PREVENTION = "PREVENTION"
    DETECTION = "DETECTION"
    ESCALATION = "ESCALATION"


TEXT_MAX = 20_000
ITEMS_MAX = 100


class PatternContent(InputModel):
    """PUT and create: every editable field (those left out get their defaults)."""

    name: str = Field(min_length=1, max_length=200)
    pattern_type: PatternType
    description: str = Field("", max_length=TEXT_MAX)
    triggers: StrList = Field(default_factory=list, max_length=ITEMS_MAX)
    actions: StrList = Field(default_factory=list, max_length=ITEMS_MAX)
    outcomes: StrList = Field(default_factory=list, max_length=ITEMS_MAX)
    source_incidents: list[str] = Field(default_factory=list, max_length=1000)
    source_postmortems: list[str] = Field(default_factory=list, max_length=1000)
    frequency: int | None = Field(None, ge=0)  # default: the number of source incidents
    success_rate: float = Field(0.0, ge=0.0, le=1.0)
    confidence_score: float = Field(0.0, ge=0.0, le=1.0)
    data_classification: Classification | None = None  # default: the most secret of its sources (else INTERNAL)


class PatternUpdate(InputModel):
    """PATCH: only the fields sent change."""

    name: str | None = Field(None, min_length=1, max_length=200)
    pattern_type: PatternType | None = None
    description: str | None = Field(None, max_length=TEXT_MAX)
    triggers: StrList | None = Field(None, max_length=ITEMS_MAX)
    actions: StrList | None = Field(None, max_length=ITEMS_MAX)
    outcomes: StrList | None = Field(None, max_length=ITEMS_MAX)
    source_incidents: list[str] | None = Field(None, max_length=1000)
    source_postmortems: list[str] | None = Field(None, max_length=1000)
    frequency: int | None = Field(None, ge=0)
    success_rate: float | None = Field(None, ge=0.0, le=1.0)
    confidence_score: float | None = Field(None, ge=0.0, le=1.0)
    data_classification: Classification | None = None


class ValidateRequest(InputModel):
    validation_notes: str = Field("", max_length=TEXT_MAX)


class ApplyRequest(InputModel):
    """`apply/`: optionally the incident it was applied to."""

    incident_id: str | None = Field(None, max_length=100)


class MergeRequest(InputModel):
    """Merge `other` into this pattern: sources, triggers, actions and outcomes united; `other` deleted."""

    other: str = Field(min_length=1, max_length=100)


class MiningRequest(InputModel):
    days: int = Field(30, ge=1, le=3650)
    min_frequency: int = Field(3, ge=2, le=1000)
