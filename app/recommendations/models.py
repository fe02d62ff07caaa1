"""Recommendation inputs and the fixed vocabulary: types, confidence levels and their thresholds."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator

from app.inputs import InputModel


class RecommendationType(str, Enum):
    SIMILAR_INCIDENT = "SIMILAR_INCIDENT"
    SOLUTION = "SOLUTION"
    KNOWLEDGE_ARTICLE = "KNOWLEDGE_ARTICLE"
    EXPERT = "EXPERT"
    LEARNING_PATTERN = "LEARNING_PATTERN"


class ConfidenceLevel(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    VERY_HIGH = "VERY_HIGH"


# confidence_score -> confidence_level: the level of the highest threshold the score reaches.
LEVEL_THRESHOLDS = ((0.85, ConfidenceLevel.VERY_HIGH), (0.7, ConfidenceLevel.HIGH), (0.5, ConfidenceLevel.MEDIUM),
                    (0.0, ConfidenceLevel.LOW))
# The types generated when a request names none.
DEFAULT_TYPES = (RecommendationType.SIMILAR_INCIDENT, RecommendationType.SOLUTION,
                 RecommendationType.KNOWLEDGE_ARTICLE, RecommendationType.EXPERT, RecommendationType.LEARNING_PATTERN)


def level_for(score: float) -> ConfidenceLevel:
    return next(level for threshold, level in LEVEL_THRESHOLDS if score >= threshold)


class RecommendationGenerateRequest(InputModel):
    """The documented body of `generate_for_incident/` (plus `force`)."""

    incident_id: str = Field(min_length=1, max_length=100)
    recommendation_types: list[RecommendationType] = Field(default_factory=lambda: list(DEFAULT_TYPES),
                                                           max_length=10)
    max_recommendations: int = Field(5, ge=1, le=50)  # in all, the types taking turns
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    force: bool = False  # replace the recommendations neither applied nor rated

    @field_validator("recommendation_types")
    @classmethod
    def _distinct(cls, value: list[RecommendationType]) -> list[RecommendationType]:
        if not value:
            raise ValueError("name at least one recommendation type")
        return list(dict.fromkeys(value))


# the former name, for the code that imports it (app/demo, tests); in this domain the class is named by its
# own name, which is also its schema's in the OpenAPI document (app/postmortems has a GenerateRequest too)
GenerateRequest = RecommendationGenerateRequest


class RateRequest(InputModel):
    """An effectiveness rating, 1 (did not help) to 5 (solved it)."""

    rating: int = Field(ge=1, le=5)
