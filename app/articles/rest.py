"""REST routes under /api/knowledge/knowledge-articles/: the resource's declaration (app/http/resources.py),
its operations (call the services) and its serializer."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from app.articles import ranking, service, stats
from app.articles.models import ArticleCreate, ArticleUpdate, RateInput, SearchInput
from app.articles.outputs import (Article, ArticleBookmark, ArticleRating, ArticleSearchResults, ArticleStatistics,
                                  PopularArticles)
from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.inputs import Param
from app.http.responses import JSON
from app.listing import Page
from app.timefmt import isoz
from app.users.models import Role, User
from app.users.service import username, users_by_ids

BASE = "/api/knowledge/knowledge-articles/"
FIELDS = ("slug", "title", "content", "summary", "tags", "article_type", "category", "subcategory",
          "related_services", "related_components", "status", "is_featured", "view_count", "related_incidents",
          "source_postmortems", "confluence_url", "wiki_url", "external_references", "search_keywords",
          "difficulty_level", "data_classification", "rating_count", "bookmark_count")
DATES = ("created_at", "updated_at", "published_at", "last_reviewed", "next_review_due")
PEOPLE = ("author", "maintainer", "last_updated_by")
SEARCH_FIELDS = ("title", "slug", "summary", "article_type", "category")


async def serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict[str, Any]]:
    """Articles as JSON; author, maintainer and last editor names come from one users query."""
    people = await users_by_ids(bk,
                                ids=[d[p] for d in docs for p in PEOPLE if d.get(p)])
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **{k: d.get(k) for k in FIELDS}}
        item["rating_average"] = round(d.get("rating_average") or 0.0, 4)
        item["runbook_links"] = d.get("runbook_links") or []
        for k in DATES:
            item[k] = isoz(d.get(k))
        for p in PEOPLE:
            item[p] = d.get(p)
            item[f"{p}_username"] = username(people, d.get(p))
        out.append(item)
    return out


async def create(call: Call) -> dict:
    """Create an article (its slug comes from its title and its id)."""
    return await call.one(await service.create_article(call.bk, data=call.body, user=call.user))


async def list_articles(call: Call) -> Page:
    """List the articles the caller may see."""
    return await service.list_articles(call.bk, user=call.user, params=call.params)


async def detail(call: Call) -> dict:
    """Get an article (counts one view).

    Passing the `search_id` of the search it was found with counts the view as a click-through of that search."""
    return await call.one(await service.view_article(call.bk, slug=call.key, user=call.user,
                                                     search_id=call.arg("search_id")))


def _update(replace: bool):
    async def run(call: Call) -> dict:
        return await call.one(await service.update_article(call.bk, slug=call.key, data=call.body, user=call.user,
                                                           replace=replace))
    run.__doc__ = ("Replace an article (fields left out get their defaults; the slug stays)." if replace else
                   "Update some fields of an article (the slug stays).")
    return run


async def delete(call: Call) -> Response:
    """Delete an article, with its ratings and bookmarks (an admin, or its author)."""
    await service.delete_article(call.bk, slug=call.key, user=call.user)
    return Response(status_code=204)


async def rate(call: Call) -> dict:
    """Rate an article from 1 to 5 (rating again replaces the caller's rating)."""
    return await service.rate_article(call.bk, slug=call.key, user=call.user, data=call.body)


def _bookmark(on: bool):
    async def run(call: Call) -> JSON:
        result = await service.set_bookmark(call.bk, slug=call.key, user=call.user, on=on)
        return JSON(result, status_code=201 if on and result["changed"] else 200)
    run.__doc__ = ("Bookmark an article (201 when bookmarked now, 200 when it already was)." if on else
                   "Remove the caller's bookmark of an article.")
    return run


async def mark_reviewed(call: Call) -> dict:
    """Record a review of an article now; the next one falls due after the review interval."""
    return await call.one(await service.mark_reviewed(call.bk, slug=call.key, user=call.user))


async def search(call: Call) -> dict:
    """Search the knowledge base, ranked by relevance, similarity and popularity."""
    result = await ranking.search(call.bk, user=call.user, data=call.body)
    shaped = [{"id": r["doc"]["_id"], **{k: r["doc"].get(k) for k in SEARCH_FIELDS},
               **{k: r[k] for k in ranking.SCORE_KEYS}} for r in result["results"]]
    return {**result, "results": shaped}


async def due_for_review(call: Call) -> Page:
    """List the published or approved articles whose review is due, most overdue first."""
    return await service.due_for_review(call.bk, user=call.user, params=call.params)


async def popular(call: Call) -> dict:
    """List the most popular published articles, most popular first."""
    docs = await ranking.popular(call.bk, user=call.user, limit=call.arg("limit"))
    items = await call.serialize(call.bk, call.user, docs)
    return {"results": [{**i, "popularity_score": round(d["popularity_score"], 4)} for i, d in zip(items, docs)]}


async def statistics(call: Call) -> dict:
    """Get knowledge-base statistics: counts, views, ratings, most viewed and best rated, usage figures."""
    return await stats.statistics(call.bk, user=call.user)


async def bookmarks(call: Call) -> Page:
    """List the articles the caller bookmarked (and may still see)."""
    return await service.my_bookmarks(call.bk, user=call.user, params=call.params)


SEARCH_ID = Param("search_id", description="The `search_id` of the search the article was opened from")
LIMIT = Param("limit", int, description="How many articles", default=10, low=1, high=100)

RESOURCE = Resource(
    base=BASE.rstrip("/"), key="slug", serialize=serialize, tag="knowledge-articles",
    description="Knowledge-base articles: runbooks, troubleshooting guides, best practices; search, ratings, "
                "bookmarks and reviews.",
    collection={"GET": Op(list_articles, response=Article, listing=service.LIST_SPEC),
                "POST": Op(create, Role.EDITOR, ArticleCreate, status=201, response=Article)},
    views={"search": {"POST": Op(search, body=SearchInput, rate="search", response=ArticleSearchResults)},
           "due_for_review": {"GET": Op(due_for_review, response=Article, listing=service.REVIEW_SPEC)},
           "popular": {"GET": Op(popular, response=PopularArticles, query=(LIMIT,))},
           "statistics": {"GET": Op(statistics, response=ArticleStatistics)},
           "bookmarks": {"GET": Op(bookmarks, service.OWN_BOOKMARKS, response=Article, listing=service.LIST_SPEC)}},
    item={"GET": Op(detail, response=Article, query=(SEARCH_ID,)),
          "PUT": Op(_update(True), Role.EDITOR, ArticleCreate, response=Article),
          "PATCH": Op(_update(False), Role.EDITOR, ArticleUpdate, response=Article),
          "DELETE": Op(delete, service.DELETE_RULE, status=204)},
    actions={"rate": {"POST": Op(rate, body=RateInput, response=ArticleRating)},
             "bookmark": {"POST": Op(_bookmark(True), service.OWN_BOOKMARKS, status=201, also=(200,), response=ArticleBookmark),
                          "DELETE": Op(_bookmark(False), service.OWN_BOOKMARKS, response=ArticleBookmark)},
             "mark_reviewed": {"POST": Op(mark_reviewed, Role.EDITOR, response=Article)}})
RESOURCES = [RESOURCE]
