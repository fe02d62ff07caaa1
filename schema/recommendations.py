"""Recommendations in GraphQL: queries, mutations and types. Resolvers only call app.recommendations.service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.articles import service as articles
from app.recommendations import service, stats
from app.recommendations.models import ConfidenceLevel, RateRequest, RecommendationGenerateRequest, RecommendationType
from app.users.models import Classification, Role
from schema.articles import KnowledgeArticle, UserType, _person
from schema.common import ClassificationEnum, Paginated, builds, camel_keys, list_params, paginated, validate
from schema.context import Info, by_ids
from schema.inputs import input_type
from schema.errors import result, typed_errors
from schema.incidents import Incident, IncidentByIdLoader, MatchingFactor

RecommendationTypeEnum = strawberry.enum(RecommendationType, name="RecommendationType")
ConfidenceLevelEnum = strawberry.enum(ConfidenceLevel, name="ConfidenceLevel")


ArticleByIdLoader = by_ids(articles.articles_by_ids)  # as the caller may see them


@builds
@strawberry.type(description="A recommendation for an incident: what, why, and how sure.")
class Recommendation:
    id: strawberry.ID
    incident_id: strawberry.ID
    recommendation_type: RecommendationTypeEnum
    title: str
    description: str
    similarity_score: float
    confidence_score: float
    confidence_level: ConfidenceLevelEnum
    suggested_actions: list[str]
    expected_outcome: str | None
    time_to_implement_seconds: float | None = strawberry.field(
        description="How long the fix took before (detection to resolution), seconds.")
    is_applied: bool
    applied_at: datetime | None
    effectiveness_rating: int | None
    reasoning: str
    matching_factors: list[MatchingFactor]
    model_version: str
    data_classification: ClassificationEnum
    created_at: datetime
    updated_at: datetime
    related_incident_id: strawberry.ID | None
    knowledge_article_id: strawberry.ID | None
    learning_pattern_id: strawberry.ID | None
    _expert: strawberry.Private[str | None]
    _applied_by: strawberry.Private[str | None]

    @strawberry.field
    async def incident(self, info: Info) -> Incident | None:
        doc = await info.context.loader("IncidentByIdLoader", IncidentByIdLoader).load(self.incident_id)
        return Incident.from_doc(doc) if doc else None

    @strawberry.field
    async def related_incident(self, info: Info) -> Incident | None:
        if not self.related_incident_id:
            return None
        doc = await info.context.loader("IncidentByIdLoader", IncidentByIdLoader).load(self.related_incident_id)
        return Incident.from_doc(doc) if doc else None

    @strawberry.field
    async def knowledge_article(self, info: Info) -> KnowledgeArticle | None:
        if not self.knowledge_article_id:
            return None
        doc = await info.context.loader("ArticleByIdLoader", ArticleByIdLoader).load(self.knowledge_article_id)
        return KnowledgeArticle.from_doc(doc) if doc else None

    @strawberry.field
    async def suggested_expert(self, info: Info) -> UserType | None:
        return await _person(info, self._expert)

    @strawberry.field
    async def applied_by(self, info: Info) -> UserType | None:
        return await _person(info, self._applied_by)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "Recommendation":
        return cls(id=d["_id"], incident_id=d["incident"], recommendation_type=RecommendationType(d["recommendation_type"]),
                   title=d.get("title") or "", description=d.get("description") or "",
                   similarity_score=d.get("similarity_score") or 0.0, confidence_score=d.get("confidence_score") or 0.0,
                   confidence_level=ConfidenceLevel(d.get("confidence_level") or ConfidenceLevel.LOW.value),
                   suggested_actions=d.get("suggested_actions") or [], expected_outcome=d.get("expected_outcome"),
                   time_to_implement_seconds=d.get("time_to_implement"), is_applied=bool(d.get("is_applied")),
                   applied_at=d.get("applied_at"), effectiveness_rating=d.get("effectiveness_rating"),
                   reasoning=d.get("reasoning") or "",
                   matching_factors=[MatchingFactor.from_dict(f) for f in d.get("matching_factors") or []],
                   model_version=d.get("model_version") or "",
                   data_classification=Classification(d.get("data_classification", Classification.INTERNAL.value)),
                   created_at=d["created_at"], updated_at=d["updated_at"], related_incident_id=d.get("related_incident"),
                   knowledge_article_id=d.get("knowledge_article"), learning_pattern_id=d.get("learning_pattern"),
                   _expert=d.get("suggested_expert"),
                   _applied_by=d.get("applied_by"))


@strawberry.type
class RecommendationStatistics:
    total_recommendations: int
    by_type: strawberry.scalars.JSON
    by_confidence_level: strawberry.scalars.JSON
    applied_count: int
    applied_rate: float
    average_effectiveness_by_type: strawberry.scalars.JSON
    feedback_over_time: strawberry.scalars.JSON = strawberry.field(
        description="Per week: {week (its Monday), ratings, average_rating}.")


@strawberry.type
class GeneratedRecommendations:
    recommendations: list[Recommendation]
    message: str = strawberry.field(description="What was done, or why nothing reached `minConfidence`.")
    withheld: int = strawberry.field(description="Candidates scored below `minConfidence` (not stored).")
    best_withheld: list["WithheldRecommendation"] = strawberry.field(
        description="The strongest of them (at most 3): how far the evidence fell short.")


@strawberry.type(description="A candidate held back below `minConfidence`: its type, title and confidence.")
class WithheldRecommendation:
    type: RecommendationTypeEnum
    title: str
    confidence_score: float


GenerateRecommendationsInput = input_type(RecommendationGenerateRequest, "GenerateRecommendationsInput",
                                          ids=("incident_id",))


GenerateResult = result("GenerateRecommendationsResult", GeneratedRecommendations)
RecommendationResult = result("RecommendationResult", Recommendation)


@strawberry.type
class RecommendationQuery:
    @strawberry.field(description="Recommendations, filtered, searched, ordered and paginated like the REST list.")
    async def recommendations(self, info: Info, recommendation_type: list[RecommendationTypeEnum] | None = None,
                              confidence_level: list[ConfidenceLevelEnum] | None = None,
                              is_applied: bool | None = None, incident: strawberry.ID | None = None,
                              search: str | None = None, ordering: str | None = None, page: int = 1,
                              page_size: int = 20) -> Paginated[Recommendation]:
        params = list_params(recommendation_type=recommendation_type, confidence_level=confidence_level,
                         is_applied=is_applied, incident=incident, search=search, ordering=ordering, page=page,
                         page_size=page_size)
        return paginated(await service.list_recommendations(info.context.backends, params=params,
                                                            user=info.context.user), Recommendation.from_doc)

    @strawberry.field
    async def recommendation(self, info: Info, id: strawberry.ID) -> Recommendation:
        return Recommendation.from_doc(await service.get_recommendation(info.context.backends, rec_id=id,
                                                                        user=info.context.user))

    @strawberry.field
    async def recommendation_statistics(self, info: Info, weeks: int = 12) -> RecommendationStatistics:
        figures = await stats.statistics(info.context.backends, user=info.context.user, weeks=weeks)
        return RecommendationStatistics(**{k: camel_keys(v) if isinstance(v, (dict, list)) else v
                                           for k, v in figures.items()})


@strawberry.type
class RecommendationMutation:
    @strawberry.mutation(description="Generate and store recommendations for an incident (editor).")
    @typed_errors(role=Role.EDITOR)
    async def generate_recommendations(self, info: Info, input: GenerateRecommendationsInput) -> GenerateResult:
        user = info.context.user
        data = validate(RecommendationGenerateRequest, input)
        done = await service.generate(info.context.backends, data=data, user=user)
        return GeneratedRecommendations(
            recommendations=[Recommendation.from_doc(d) for d in done.recommendations],
            message=done.message(data.min_confidence), withheld=done.withheld,
            best_withheld=[WithheldRecommendation(type=RecommendationType(w["type"]), title=w["title"],
                                                  confidence_score=w["confidence_score"]) for w in done.best_withheld])

    @strawberry.mutation
    @typed_errors(role=service.ACT_RULE)
    async def apply_recommendation(self, info: Info, id: strawberry.ID) -> RecommendationResult:
        return Recommendation.from_doc(await service.apply(info.context.backends, rec_id=id, user=info.context.user))

    @strawberry.mutation(description="Rate how well a recommendation worked, 1-5.")
    @typed_errors(role=service.ACT_RULE)
    async def rate_recommendation(self, info: Info, id: strawberry.ID, rating: int) -> RecommendationResult:
        return Recommendation.from_doc(await service.rate(info.context.backends, rec_id=id, user=info.context.user,
                                                          data=validate(RateRequest, {"rating": rating})))
