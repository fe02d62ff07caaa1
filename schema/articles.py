"""The knowledge base in GraphQL. Resolvers only call app.articles (service, ranking, stats); people
resolve through a per-request DataLoader (one users query per request)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.articles import models, ranking, service, stats
from app.articles.models import (ArticleCreate, ArticleStatus, ArticleType, ArticleUpdate, Difficulty, RateInput,
                                 RunbookLinkKind, SearchInput)
from app.errors import ValidationFailed
from app.permissions import permit
from app.users.models import Classification, Role, User
from schema.common import ClassificationEnum, Paginated, list_params, paginated, plain, validate
from schema.context import Info, UserByIdLoader
from schema.inputs import input_type
from schema.errors import result, typed_errors

ArticleTypeEnum = strawberry.enum(ArticleType, name="ArticleType")
DifficultyEnum = strawberry.enum(Difficulty, name="DifficultyLevel")
ArticleStatusEnum = strawberry.enum(ArticleStatus, name="ArticleStatus")
RunbookLinkKindEnum = strawberry.enum(RunbookLinkKind, name="RunbookLinkKind")


@strawberry.type(description="A link from an article to a runbook or the automation that runs it.")
class RunbookLink:
    name: str
    url: str
    kind: RunbookLinkKindEnum


RunbookLinkInput = input_type(models.RunbookLink, "RunbookLinkInput", description=(
    "A runbook link: a name, an http(s) URL, a kind (at most 20 per article)."))


@strawberry.type(name="User")
class UserType:
    id: strawberry.ID
    username: str
    team: str

    @classmethod
    def from_user(cls, u: User | None) -> "UserType | None":
        return cls(id=u.id, username=u.username, team=u.team) if u else None


async def _person(info: Info, user_id: str | None) -> UserType | None:
    if not user_id:
        return None
    return UserType.from_user(await info.context.loader("UserByIdLoader", UserByIdLoader).load(user_id))


@strawberry.type
class KnowledgeArticle:
    id: strawberry.ID
    slug: str
    title: str
    content: str
    summary: str
    tags: list[str]
    article_type: ArticleTypeEnum
    category: str
    subcategory: str
    related_services: list[str]
    related_components: list[str]
    status: ArticleStatusEnum
    is_featured: bool
    view_count: int
    difficulty_level: DifficultyEnum
    data_classification: ClassificationEnum
    search_keywords: list[str]
    external_references: JSON
    related_incidents: list[str]
    source_postmortems: list[str]
    confluence_url: str | None
    wiki_url: str | None
    runbook_links: list[RunbookLink]
    rating_average: float
    rating_count: int
    bookmark_count: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    last_reviewed: datetime | None
    next_review_due: datetime | None
    _doc: strawberry.Private[dict]

    @strawberry.field
    async def author(self, info: Info) -> UserType | None:
        return await _person(info, self._doc.get("author"))

    @strawberry.field
    async def maintainer(self, info: Info) -> UserType | None:
        return await _person(info, self._doc.get("maintainer"))

    @strawberry.field
    async def last_updated_by(self, info: Info) -> UserType | None:
        return await _person(info, self._doc.get("last_updated_by"))

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "KnowledgeArticle":
        return cls(id=d["_id"], slug=d["slug"], title=d["title"], content=d["content"], summary=d.get("summary", ""),
                   tags=d.get("tags", []), article_type=ArticleType(d["article_type"]), category=d["category"],
                   subcategory=d.get("subcategory", ""), related_services=d.get("related_services", []),
                   related_components=d.get("related_components", []), status=ArticleStatus(d["status"]),
                   is_featured=d.get("is_featured", False), view_count=d.get("view_count", 0),
                   difficulty_level=Difficulty(d["difficulty_level"]),
                   data_classification=Classification(d["data_classification"]),
                   search_keywords=d.get("search_keywords", []), external_references=d.get("external_references", []),
                   related_incidents=d.get("related_incidents", []), source_postmortems=d.get("source_postmortems", []),
                   confluence_url=d.get("confluence_url"), wiki_url=d.get("wiki_url"),
                   runbook_links=[RunbookLink(name=link.get("name") or "", url=link.get("url") or "",
                                              kind=RunbookLinkKind(link.get("kind") or RunbookLinkKind.RUNBOOK.value))
                                  for link in d.get("runbook_links") or []],
                   rating_average=round(d.get("rating_average") or 0.0, 4), rating_count=d.get("rating_count", 0),
                   bookmark_count=d.get("bookmark_count", 0), created_at=d["created_at"], updated_at=d["updated_at"],
                   published_at=d.get("published_at"), last_reviewed=d.get("last_reviewed"),
                   next_review_due=d.get("next_review_due"), _doc=d)


@strawberry.type
class PopularArticle:
    article: KnowledgeArticle
    popularity_score: float


@strawberry.type
class KnowledgeSearchHit:
    article: KnowledgeArticle
    similarity_score: float
    relevance_score: float
    popularity_score: float
    matching_keywords: list[str]


@strawberry.type
class SearchPagination:
    limit: int
    offset: int
    has_more: bool


@strawberry.type
class KnowledgeSearchFilters:
    article_types: list[ArticleTypeEnum]
    categories: list[str]
    difficulty_levels: list[DifficultyEnum]


@strawberry.type
class KnowledgeSearchResult:
    results: list[KnowledgeSearchHit]
    total_count: int
    query: str
    filters: KnowledgeSearchFilters
    pagination: SearchPagination
    search_id: str


@strawberry.type
class ArticleBrief:
    id: strawberry.ID
    slug: str
    title: str
    view_count: int
    rating_average: float
    rating_count: int


@strawberry.type
class SearchTermCount:
    query: str
    count: int


@strawberry.type
class KnowledgeBaseUsage:
    searches: int
    searches_without_results: int
    top_search_terms: list[SearchTermCount]
    top_zero_result_terms: list[SearchTermCount]
    views: int
    searches_with_click: int
    click_through_rate: float | None
    ratings: int
    bookmarks: int


@strawberry.type
class KnowledgeBaseStatistics:
    total_articles: int
    by_type: JSON = strawberry.field(description="Article count per article type (keys are the enum values).")
    by_status: JSON = strawberry.field(description="Article count per status.")
    by_category: JSON = strawberry.field(description="Article count per category.")
    by_difficulty: JSON = strawberry.field(description="Article count per difficulty level.")
    total_views: int
    total_ratings: int
    average_rating: float | None
    total_bookmarks: int
    featured_count: int
    due_for_review_count: int
    most_viewed: list[ArticleBrief]
    best_rated: list[ArticleBrief]
    usage: KnowledgeBaseUsage

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KnowledgeBaseStatistics":
        usage = d["usage"]
        return cls(**{**d, "most_viewed": [ArticleBrief(**b) for b in d["most_viewed"]],
                      "best_rated": [ArticleBrief(**b) for b in d["best_rated"]],
                      "usage": KnowledgeBaseUsage(**{
                          **usage, "top_search_terms": [SearchTermCount(**t) for t in usage["top_search_terms"]],
                          "top_zero_result_terms": [SearchTermCount(**t) for t in usage["top_zero_result_terms"]]})})


@strawberry.type
class RatingResult:
    slug: str
    rating: int
    feedback: str
    rating_average: float
    rating_count: int


@strawberry.type
class BookmarkResult:
    slug: str
    bookmarked: bool
    changed: bool


@strawberry.type
class DeletedArticle:
    slug: str


KnowledgeSearchInput = input_type(SearchInput, "KnowledgeSearchInput")


CreateKnowledgeArticleInput = input_type(ArticleCreate, "CreateKnowledgeArticleInput", ids=("maintainer",))


UpdateKnowledgeArticleInput = input_type(ArticleUpdate, "UpdateKnowledgeArticleInput", partial=True,
                                         ids=("maintainer",))


ArticleResult = result("KnowledgeArticleResult", KnowledgeArticle)
DeleteResult = result("DeleteKnowledgeArticleResult", DeletedArticle)
RateResult = result("RateKnowledgeArticleResult", RatingResult)
BookmarkPayload = result("BookmarkKnowledgeArticleResult", BookmarkResult)


def _article_page(fetch):
    """A resolver of a page of articles the caller may see — `fetch(bk, user=…, params=…)` is the articles
    list, the ones due for review or the caller's bookmarks — with the articles list's filters, `search`,
    ordering and paging (the REST routes take the same)."""
    async def resolver(info: Info, article_type: list[ArticleTypeEnum] | None = None,
                       category: str | None = None, subcategory: str | None = None,
                       status: list[ArticleStatusEnum] | None = None, is_featured: bool | None = None,
                       difficulty_level: list[DifficultyEnum] | None = None,
                       data_classification: list[ClassificationEnum] | None = None,
                       search: str | None = None, ordering: str | None = None, page: int = 1,
                       page_size: int = 20) -> Paginated[KnowledgeArticle]:
        params = list_params(article_type=article_type, category=category, subcategory=subcategory, status=status,
                             is_featured=is_featured, difficulty_level=difficulty_level,
                             data_classification=data_classification, search=search, ordering=ordering, page=page,
                             page_size=page_size)
        return paginated(await fetch(info.context.backends, user=info.context.user, params=params),
                         KnowledgeArticle.from_doc)

    return resolver


@strawberry.type
class ArticleQuery:
    knowledge_articles: Paginated[KnowledgeArticle] = strawberry.field(
        resolver=_article_page(service.list_articles),
        description="Articles the caller may see, filtered, searched, ordered and paginated.")

    @strawberry.field(description="One article; reading it counts a view unless countView is false (it is "
                                  "audit-logged either way).")
    async def knowledge_article(self, info: Info, slug: str, count_view: bool = True,
                                search_id: str | None = None) -> KnowledgeArticle:
        ctx = info.context
        return KnowledgeArticle.from_doc(await service.view_article(ctx.backends, slug=slug, user=ctx.user,
                                                                    search_id=search_id, count=count_view))

    @strawberry.field
    async def search_knowledge_base(self, info: Info, input: KnowledgeSearchInput) -> KnowledgeSearchResult:
        res = await ranking.search(info.context.backends, user=info.context.user, data=validate(SearchInput, input))
        return KnowledgeSearchResult(
            results=[KnowledgeSearchHit(article=KnowledgeArticle.from_doc(r["doc"]),
                                        **{k: r[k] for k in ranking.SCORE_KEYS}) for r in res["results"]],
            total_count=res["total_count"], query=res["query"],
            filters=KnowledgeSearchFilters(
                article_types=[ArticleType(t) for t in res["filters"]["article_types"]],
                categories=res["filters"]["categories"],
                difficulty_levels=[Difficulty(d) for d in res["filters"]["difficulty_levels"]]),
            pagination=SearchPagination(**res["pagination"]), search_id=res["search_id"])

    articles_due_for_review: Paginated[KnowledgeArticle] = strawberry.field(resolver=_article_page(service.due_for_review))

    @strawberry.field
    async def popular_articles(self, info: Info, limit: int = 10) -> list[PopularArticle]:
        if not 1 <= limit <= 100:
            raise ValidationFailed("limit must be between 1 and 100", {"field": "limit"})
        docs = await ranking.popular(info.context.backends, user=info.context.user, limit=limit)
        return [PopularArticle(article=KnowledgeArticle.from_doc(d), popularity_score=round(d["popularity_score"], 4))
                for d in docs]

    @strawberry.field
    async def knowledge_base_statistics(self, info: Info) -> KnowledgeBaseStatistics:
        return KnowledgeBaseStatistics.from_dict(await stats.statistics(info.context.backends, user=info.context.user))



    my_bookmarks: Paginated[KnowledgeArticle] = strawberry.field(
        resolver=permit(service.OWN_BOOKMARKS)(_article_page(service.my_bookmarks)))

@strawberry.type
class ArticleMutation:
    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def create_knowledge_article(self, info: Info, input: CreateKnowledgeArticleInput) -> ArticleResult:
        data = validate(ArticleCreate, _without_nulls(input, ("external_references",)))
        return KnowledgeArticle.from_doc(await service.create_article(info.context.backends, data=data,
                                                                      user=info.context.user))

    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def update_knowledge_article(self, info: Info, slug: str, input: UpdateKnowledgeArticleInput) -> ArticleResult:
        doc = await service.update_article(info.context.backends, slug=slug, data=validate(ArticleUpdate, input),
                                           user=info.context.user)
        return KnowledgeArticle.from_doc(doc)

    @strawberry.mutation
    @typed_errors(role=service.DELETE_RULE)
    async def delete_knowledge_article(self, info: Info, slug: str) -> DeleteResult:
        await service.delete_article(info.context.backends, slug=slug, user=info.context.user)
        return DeletedArticle(slug=slug)

    @strawberry.mutation
    @typed_errors
    async def rate_knowledge_article(self, info: Info, slug: str, rating: int, feedback: str = "") -> RateResult:
        data = validate(RateInput, {"rating": rating, "feedback": feedback})
        return RatingResult(**await service.rate_article(info.context.backends, slug=slug, user=info.context.user,
                                                         data=data))

    @strawberry.mutation
    @typed_errors(role=service.OWN_BOOKMARKS)
    async def bookmark_knowledge_article(self, info: Info, slug: str) -> BookmarkPayload:
        return await _bookmark(info, slug, True)

    @strawberry.mutation
    @typed_errors(role=service.OWN_BOOKMARKS)
    async def unbookmark_knowledge_article(self, info: Info, slug: str) -> BookmarkPayload:
        return await _bookmark(info, slug, False)

    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def mark_knowledge_article_reviewed(self, info: Info, slug: str) -> ArticleResult:
        return KnowledgeArticle.from_doc(await service.mark_reviewed(info.context.backends, slug=slug,
                                                                     user=info.context.user))


async def _bookmark(info: Info, slug: str, on: bool) -> BookmarkResult:
    return BookmarkResult(**await service.set_bookmark(info.context.backends, slug=slug, user=info.context.user, on=on))


def _without_nulls(value: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Input as a dict, leaving out optional fields sent as null (so the model's default applies)."""
    data = plain(value)
    return {k: v for k, v in data.items() if not (k in fields and v is None)}
