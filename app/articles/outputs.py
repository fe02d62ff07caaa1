"""What the knowledge-article routes answer (app/articles/rest.py): the output models of the OpenAPI document
(app/outputs.py). They describe the serializers' JSON; they are not used to build it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.articles.models import ArticleStatus, ArticleType, Difficulty, RunbookLinkKind
from app.outputs import Output, Timestamp, examples
from app.users.models import Classification

ARTICLE_EXAMPLE: dict[str, Any] = {
    "id": "3f2b8c1e-6a4d-4e0f-9b7a-2c5d8e1f4a6b", "slug": "database-troubleshooting-guide-3f2b8c1e",
    "title": "Database Troubleshooting Guide", "content": "This guide covers common database issues...",
    "summary": "Comprehensive guide for database troubleshooting", "tags": ["database", "troubleshooting", "performance"],
    "article_type": "TROUBLESHOOTING", "category": "Database", "subcategory": "Performance",
    "related_services": ["database", "api"], "related_components": ["postgresql", "connection-pool"],
    "status": "PUBLISHED", "is_featured": False, "view_count": 42, "related_incidents": [],
    "source_postmortems": [], "confluence_url": None, "wiki_url": None, "external_references": [],
    "search_keywords": ["timeout"], "difficulty_level": "INTERMEDIATE", "data_classification": "INTERNAL",
    "rating_count": 3, "bookmark_count": 5, "rating_average": 4.3333,
    "runbook_links": [{"name": "Resize the pool", "url": "https://runbooks.example.com/db/pool-resize",
                       "kind": "AUTOMATION"}],
    "created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-01-16T14:20:00Z",
    "published_at": "2024-01-15T10:30:00Z", "last_reviewed": None, "next_review_due": "2024-04-14T10:30:00Z",
    "author": "8d1e4f2a-0b3c-4d5e-8f9a-1b2c3d4e5f60", "author_username": "john.doe",
    "maintainer": "8d1e4f2a-0b3c-4d5e-8f9a-1b2c3d4e5f60", "maintainer_username": "john.doe",
    "last_updated_by": "8d1e4f2a-0b3c-4d5e-8f9a-1b2c3d4e5f60", "last_updated_by_username": "john.doe",
}


class RunbookLink(Output):
    """A link to a runbook or the automation that runs it."""

    name: str
    url: str = Field(description="http:// or https://")
    kind: RunbookLinkKind


class Article(Output):
    """A knowledge-base article (runbook, troubleshooting guide, best practice…)."""

    model_config = examples(ARTICLE_EXAMPLE)

    id: str
    slug: str = Field(description="Its key in paths: the title, slugified, and the first 8 hex digits of its id")
    title: str
    content: str
    summary: str
    tags: list[str]
    article_type: ArticleType
    category: str
    subcategory: str
    related_services: list[str]
    related_components: list[str]
    status: ArticleStatus
    is_featured: bool
    view_count: int = Field(description="Reads of the article (each GET of it counts one)")
    related_incidents: list[str] = Field(description="Incident ids")
    source_postmortems: list[str] = Field(description="Postmortem ids")
    confluence_url: str | None
    wiki_url: str | None
    external_references: list[Any] = Field(description="Free-form JSON values, as written")
    search_keywords: list[str]
    difficulty_level: Difficulty
    data_classification: Classification
    rating_count: int
    bookmark_count: int
    rating_average: float = Field(description="The mean rating (1-5), 0 before the first rating")
    runbook_links: list[RunbookLink] = Field(description="Runbooks and the automation that runs them (at most 20)")
    created_at: Timestamp
    updated_at: Timestamp
    published_at: Timestamp | None = Field(description="When it was first published (null: never)")
    last_reviewed: Timestamp | None
    next_review_due: Timestamp | None
    author: str = Field(description="User id")
    author_username: str | None = Field(description="null when the user no longer exists")
    maintainer: str | None = Field(description="User id")
    maintainer_username: str | None
    last_updated_by: str = Field(description="User id")
    last_updated_by_username: str | None


class PopularArticle(Article):
    """An article with its popularity score."""

    model_config = examples({**ARTICLE_EXAMPLE, "popularity_score": 0.75})

    popularity_score: float = Field(description="0.45 views + 0.30 rating + 0.15 bookmarks + 0.10 freshness (0-1)")


class PopularArticles(Output):
    """The most popular published articles the caller may see, most popular first."""

    results: list[PopularArticle]


class ArticleSearchHit(Output):
    """One search result: the article's headline fields and its scores."""

    id: str
    title: str
    slug: str
    summary: str
    article_type: ArticleType
    category: str
    similarity_score: float = Field(description="How close the article is to what the query is about (0-1)")
    relevance_score: float = Field(description="Its full-text score relative to the best match (0-1)")
    popularity_score: float = Field(description="Views, rating, bookmarks and freshness (0-1)")
    matching_keywords: list[str] = Field(description="The words of the query the article contains")


class ArticleSearchFilters(Output):
    """The filters the search was made with, as sent."""

    article_types: list[ArticleType]
    categories: list[str]
    difficulty_levels: list[Difficulty]


class ArticleSearchPagination(Output):
    limit: int
    offset: int
    has_more: bool = Field(description="Whether results past this page exist")


class ArticleSearchResults(Output):
    """A page of search results, best first."""

    model_config = examples({
        "results": [{"id": "uuid", "title": "Database Connection Troubleshooting",
                     "slug": "database-connection-troubleshooting", "summary": "Guide for resolving database connection issues",
                     "article_type": "TROUBLESHOOTING", "category": "Database", "similarity_score": 0.85,
                     "relevance_score": 0.92, "popularity_score": 0.75,
                     "matching_keywords": ["database", "connection", "timeout"]}],
        "total_count": 15, "query": "database connection timeout",
        "filters": {"article_types": ["RUNBOOK", "TROUBLESHOOTING"], "categories": ["Database"],
                    "difficulty_levels": ["INTERMEDIATE", "ADVANCED"]},
        "pagination": {"limit": 20, "offset": 0, "has_more": False},
        "search_id": "5b0c6d7e-1f2a-4b3c-8d9e-0a1b2c3d4e5f"})

    results: list[ArticleSearchHit]
    total_count: int = Field(description="How many articles the caller may see match")
    query: str
    filters: ArticleSearchFilters
    pagination: ArticleSearchPagination
    search_id: str = Field(description="This search's id: pass it as `?search_id=` when opening a result "
                                       "(click-through figures)")


class ArticleBrief(Output):
    """An article among the most viewed or best rated."""

    id: str
    slug: str
    title: str
    view_count: int
    rating_average: float
    rating_count: int


class ArticleSearchTerm(Output):
    query: str = Field(description="The query, trimmed and lower-cased")
    count: int


class ArticleUsage(Output):
    """Usage figures, over the events of people who could see no more than the caller."""

    searches: int
    searches_without_results: int
    top_search_terms: list[ArticleSearchTerm]
    top_zero_result_terms: list[ArticleSearchTerm]
    views: int
    searches_with_click: int = Field(description="Searches with results whose author then opened an article "
                                                 "from them")
    click_through_rate: float | None = Field(description="searches_with_click / searches with results (null: none)")
    ratings: int
    bookmarks: int


class ArticleStatistics(Output):
    """Knowledge-base figures over the articles the caller may see."""

    model_config = examples({
        "total_articles": 120, "by_type": {"RUNBOOK": 40, "TROUBLESHOOTING": 50, "BEST_PRACTICE": 30},
        "by_status": {"PUBLISHED": 100, "DRAFT": 20}, "by_category": {"Database": 35, "Network": 25},
        "by_difficulty": {"BEGINNER": 20, "INTERMEDIATE": 70, "ADVANCED": 30}, "total_views": 5400,
        "total_ratings": 310, "average_rating": 4.1, "total_bookmarks": 95, "featured_count": 8,
        "due_for_review_count": 6,
        "most_viewed": [{"id": "uuid", "slug": "database-troubleshooting-guide-3f2b8c1e",
                         "title": "Database Troubleshooting Guide", "view_count": 420, "rating_average": 4.5,
                         "rating_count": 12}],
        "best_rated": [{"id": "uuid", "slug": "database-troubleshooting-guide-3f2b8c1e",
                        "title": "Database Troubleshooting Guide", "view_count": 420, "rating_average": 4.5,
                        "rating_count": 12}],
        "usage": {"searches": 800, "searches_without_results": 40,
                  "top_search_terms": [{"query": "database timeout", "count": 25}],
                  "top_zero_result_terms": [{"query": "kafka lag", "count": 4}], "views": 5400,
                  "searches_with_click": 500, "click_through_rate": 0.6579, "ratings": 310, "bookmarks": 95}})

    total_articles: int
    by_type: dict[str, int] = Field(description="Articles by article_type")
    by_status: dict[str, int]
    by_category: dict[str, int]
    by_difficulty: dict[str, int]
    total_views: int
    total_ratings: int
    average_rating: float | None = Field(description="Over every rating (null: none yet)")
    total_bookmarks: int
    featured_count: int
    due_for_review_count: int
    most_viewed: list[ArticleBrief] = Field(description="The 5 most viewed")
    best_rated: list[ArticleBrief] = Field(description="The 5 best rated (among rated articles)")
    usage: ArticleUsage


class ArticleRating(Output):
    """The caller's rating (it replaces their earlier one) and the article's figures after it."""

    model_config = examples({"slug": "database-troubleshooting-guide-3f2b8c1e", "rating": 4,
                             "feedback": "Very helpful guide, saved me hours of debugging", "rating_average": 4.25,
                             "rating_count": 4})

    slug: str
    rating: int
    feedback: str
    rating_average: float
    rating_count: int


class ArticleBookmark(Output):
    """Whether the caller has the article bookmarked now, and whether this request changed it."""

    model_config = examples({"slug": "database-troubleshooting-guide-3f2b8c1e", "bookmarked": True, "changed": True})

    slug: str
    bookmarked: bool
    changed: bool
