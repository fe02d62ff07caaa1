"""What the recommendations REST API answers (app/recommendations/rest.py), as output models for the OpenAPI
document: a recommendation (`IncidentRecommendation`, the documented model), the answer of
`generate_for_incident/` (`GeneratedRecommendations`) and the statistics (`RecommendationStatistics`)."""

from __future__ import annotations

from pydantic import Field, create_model

from app.incidents.outputs import MatchingFactor
from app.outputs import Output, Timestamp, examples
from app.recommendations.models import ConfidenceLevel, RecommendationType
from app.users.models import Classification

_SCORE = {"ge": 0, "le": 1}


class IncidentRecommendation(Output):
    """A recommendation for an incident: what it suggests (a similar incident, a solution, an article, an
    expert or a learning pattern), how sure it is and why, and whether it was applied and how well it worked."""

    model_config = examples({
        "id": "3a5b7c9d-1e2f-4a6b-8c0d-2e4f6a8b0c1d", "incident": "5f0c6a0e-2b8e-4c1a-9d3e-7a6b5c4d3e2f",
        "recommendation_type": "SOLUTION", "title": "Solution: Raised the memory limit to 1Gi. (as in INC-20260211-004)",
        "description": "In INC-20260211-004 (resolved): Raised the memory limit to 1Gi.",
        "similarity_score": 0.78, "confidence_level": "VERY_HIGH", "confidence_score": 0.85,
        "related_incident": "7d2e9b3c-1a4f-4b6d-8e0c-2f3a4b5c6d7e", "knowledge_article": None,
        "suggested_expert": None, "expected_outcome": "INC-20260211-004 was resolved within 48 min after these steps.",
        "is_applied": True, "applied_by": "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b", "effectiveness_rating": 4,
        "reasoning": "INC-20260211-004 (resolved) is similar (score 0.78); what was done there: Raised the memory "
                     "limit to 1Gi. It took 48 min from detection to resolution.",
        "model_version": "hybrid-4", "data_classification": "INTERNAL", "learning_pattern": None,
        "suggested_actions": ["Raised the memory limit to 1Gi."],
        "matching_factors": [{"factor": "text", "weight": 0.45, "value": 1.0, "detail": "words in common"},
                             {"factor": "fix_evidence", "weight": 0.0, "value": 1,
                              "detail": "resolution, fix events and postmortem action items"}],
        "applied_at": "2026-03-19T15:30:00Z", "created_at": "2026-03-19T15:21:00Z",
        "updated_at": "2026-03-19T15:45:00Z", "time_to_implement": "00:48:00",
        "suggested_expert_username": None, "applied_by_username": "alice"})

    id: str = Field(description="The recommendation's id (a UUID)")
    incident: str = Field(description="The id of the incident it is for")
    recommendation_type: RecommendationType
    title: str
    description: str
    similarity_score: float = Field(**_SCORE, description="How alike the evidence is (0-1)")
    confidence_level: ConfidenceLevel
    confidence_score: float = Field(**_SCORE, description="The probability a responder rates it helpful (0-1)")
    related_incident: str | None = Field(description="The id of the incident it names (SIMILAR_INCIDENT, SOLUTION)")
    knowledge_article: str | None = Field(description="The id of the article it names (KNOWLEDGE_ARTICLE)")
    suggested_expert: str | None = Field(description="The id of the user it names (EXPERT)")
    expected_outcome: str | None
    is_applied: bool
    applied_by: str | None = Field(description="The id of the user who applied it")
    effectiveness_rating: int | None = Field(ge=1, le=5, description="The latest rating, 1-5")
    reasoning: str = Field(description="Why, in words a person can check")
    model_version: str
    data_classification: Classification
    learning_pattern: str | None = Field(description="The id of the learning pattern it names (LEARNING_PATTERN)")
    suggested_actions: list[str]
    matching_factors: list[MatchingFactor]
    applied_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    time_to_implement: str | None = Field(
        description="How long the fix took where it was done, as `[DD ]HH:MM:SS`", examples=["00:48:00"])
    suggested_expert_username: str | None = Field(
        description="The username of `suggested_expert` (null when none, or no such user)")
    applied_by_username: str | None = Field(description="The username of `applied_by`")


class GeneratedRecommendation(Output):
    """A recommendation a generation stored (its details at `GET …/recommendations/{id}/`)."""

    id: str
    title: str
    type: RecommendationType
    confidence_score: float = Field(**_SCORE)
    similarity_score: float = Field(**_SCORE)


class WithheldRecommendation(Output):
    """A candidate held back below `min_confidence`."""

    type: RecommendationType
    title: str
    confidence_score: float = Field(**_SCORE)


class WithheldRecommendations(Output):
    count: int = Field(ge=0, description="How many candidates scored below `min_confidence`")
    best: list[WithheldRecommendation] = Field(description="The strongest of them (at most 3), best first")


class GeneratedRecommendations(Output):
    """What a generation stored, best first, and what it held back below `min_confidence`."""

    model_config = examples({
        "message": "Recommendations generated successfully",
        "recommendations": [{"id": "uuid", "title": "Similar Incident: Database Timeout Issue",
                             "type": "SIMILAR_INCIDENT", "confidence_score": 0.85, "similarity_score": 0.78}],
        "withheld": {"count": 0, "best": []}})

    message: str = Field(description="Whether any was stored; when none, how far the evidence fell short")
    recommendations: list[GeneratedRecommendation]
    withheld: WithheldRecommendations


def _counts(name: str, keys: list[str], kind: type, doc: str, **field: object) -> type[Output]:
    """A model with one required field per value of an enum (every value is always present)."""
    fields = {k: (kind, Field(**field)) for k in keys}
    return create_model(name, __base__=Output, __doc__=doc, **fields)  # type: ignore[call-overload]


_TYPES = [t.value for t in RecommendationType]
RecommendationCountsByType = _counts("RecommendationCountsByType", _TYPES, int, "How many, by type.", ge=0)
RecommendationCountsByLevel = _counts("RecommendationCountsByLevel", [lv.value for lv in ConfidenceLevel], int,
                                      "How many, by confidence level.", ge=0)
EffectivenessByType = _counts("RecommendationEffectivenessByType", _TYPES, float | None,
                              "The mean effectiveness rating (1-5) by type; null when none of the type was rated.")


class RecommendationFeedbackWeek(Output):
    week: str = Field(description="The first day of the week (a date)", json_schema_extra={"format": "date"},
                      examples=["2026-03-16"])
    ratings: int = Field(ge=1)
    average_rating: float = Field(ge=1, le=5)


class RecommendationStatistics(Output):
    """Counts by type and level, how many were applied, and how well they worked — over what the caller may see."""

    model_config = examples({
        "total_recommendations": 42,
        "by_type": {"SIMILAR_INCIDENT": 15, "SOLUTION": 10, "KNOWLEDGE_ARTICLE": 9, "EXPERT": 6, "LEARNING_PATTERN": 2},
        "by_confidence_level": {"LOW": 12, "MEDIUM": 14, "HIGH": 10, "VERY_HIGH": 6},
        "applied_count": 11, "applied_rate": 0.2619,
        "average_effectiveness_by_type": {"SIMILAR_INCIDENT": 3.8, "SOLUTION": 4.2, "KNOWLEDGE_ARTICLE": 3.5,
                                          "EXPERT": None, "LEARNING_PATTERN": None},
        "feedback_over_time": [{"week": "2026-03-09", "ratings": 4, "average_rating": 3.75},
                               {"week": "2026-03-16", "ratings": 6, "average_rating": 4.17}]})

    total_recommendations: int = Field(ge=0)
    by_type: RecommendationCountsByType  # type: ignore[valid-type]
    by_confidence_level: RecommendationCountsByLevel  # type: ignore[valid-type]
    applied_count: int = Field(ge=0)
    applied_rate: float = Field(ge=0, le=1)
    average_effectiveness_by_type: EffectivenessByType  # type: ignore[valid-type]
    feedback_over_time: list[RecommendationFeedbackWeek] = Field(
        description="Ratings given per week over the last `weeks` weeks, oldest first")
