"""REST routes under /api/knowledge/knowledge-articles/: the resource's declaration (app/http/resources.py),
its operations (call the services) and its serializer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.articles import ranking, service, stats
from app.articles.models import ArticleCreate, ArticleUpdate, RateInput, SearchInput
from app.errors import ValidationFailed
from app.http.resources import Call, Op, Resource
from app.http.responses import JSON
from app.inputs import ascii_int
from app.listing import Page
from app.timefmt import isoz
from app.users.models import Role
from app.users.service import username, users_by_ids

BASE = "/api/knowledge/knowledge-articles/"
FIELDS = ("slug", "title", "content", "summary", "tags", "article_type", "category", "subcategory",
          "related_services", "related_components", "status", "is_featured", "view_count", "related_incidents",
          "source_postmortems", "confluence_url", "wiki_url", "external_references", "search_keywords",
          "difficulty_level", "data_classification", "rating_count", "bookmark_count")
DATES = ("created_at", "updated_at", "published_at", "last_reviewed", "next_review_due")
PEOPLE = ("author", "maintainer", "last_updated_by")
SEARCH_FIELDS = ("title", "slug", "summary", "article_type", "category")


async def serialize(request: Request, docs: list[dict]) -> list[dict[str, Any]]:
    """Articles as JSON; author, maintainer and last editor names come from one users query."""
    people = await users_by_ids(request.app.state.backends,
                                ids=[d[p] for d in docs for p in PEOPLE if d.get(p)])
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **{k: d.get(k) for k in FIELDS}}
        item["rating_average"] = round(d.get("rating_average") or 0.0, 4)
        for k in DATES:
            item[k] = isoz(d.get(k))
        for p in PEOPLE:
            item[p] = d.get(p)
            item[f"{p}_username"] = username(people, d.get(p))
        out.append(item)
    return out


async def create(call: Call) -> dict:
    return await call.one(await service.create_article(call.bk, data=call.body, user=call.user))


async def list_articles(call: Call) -> Page:
    return await service.list_articles(call.bk, user=call.user, params=call.params)


async def detail(call: Call) -> dict:
    return await call.one(await service.view_article(call.bk, slug=call.key, user=call.user,
                                                     search_id=call.params.get("search_id")))


def _update(replace: bool):
    async def run(call: Call) -> dict:
        return await call.one(await service.update_article(call.bk, slug=call.key, data=call.body, user=call.user,
                                                           replace=replace))
    return run


async def delete(call: Call) -> Response:
    await service.delete_article(call.bk, slug=call.key, user=call.user)
    return Response(status_code=204)


async def rate(call: Call) -> dict:
    return await service.rate_article(call.bk, slug=call.key, user=call.user, data=call.body)


def _bookmark(on: bool):
    async def run(call: Call) -> JSON:
        result = await service.set_bookmark(call.bk, slug=call.key, user=call.user, on=on)
        return JSON(result, status_code=201 if on and result["changed"] else 200)
    return run


async def mark_reviewed(call: Call) -> dict:
    return await call.one(await service.mark_reviewed(call.bk, slug=call.key, user=call.user))


async def search(call: Call) -> dict:
    result = await ranking.search(call.bk, user=call.user, data=call.body)
    shaped = [{"id": r["doc"]["_id"], **{k: r["doc"].get(k) for k in SEARCH_FIELDS},
               **{k: r[k] for k in ranking.SCORE_KEYS}} for r in result["results"]]
    return {**result, "results": shaped}


async def due_for_review(call: Call) -> Page:
    return await service.due_for_review(call.bk, user=call.user, params=call.params)


async def popular(call: Call) -> dict:
    limit = ascii_int(call.params.get("limit", "10"))
    if limit is None or not 1 <= limit <= 100:
        raise ValidationFailed("limit must be an integer between 1 and 100", {"field": "limit"})
    docs = await ranking.popular(call.bk, user=call.user, limit=limit)
    items = await call.serialize(call.request, docs)
    return {"results": [{**i, "popularity_score": round(d["popularity_score"], 4)} for i, d in zip(items, docs)]}


async def statistics(call: Call) -> dict:
    return await stats.statistics(call.bk, user=call.user)


async def bookmarks(call: Call) -> Page:
    return await service.my_bookmarks(call.bk, user=call.user, params=call.params)


RESOURCE = Resource(
    base=BASE.rstrip("/"), key="slug", serialize=serialize,
    collection={"GET": Op(list_articles), "POST": Op(create, Role.EDITOR, ArticleCreate, status=201)},
    views={"search": {"POST": Op(search, body=SearchInput, rate="search")},
           "due_for_review": {"GET": Op(due_for_review)}, "popular": {"GET": Op(popular)},
           "statistics": {"GET": Op(statistics)}, "bookmarks": {"GET": Op(bookmarks)}},
    item={"GET": Op(detail), "PUT": Op(_update(True), Role.EDITOR, ArticleCreate),
          "PATCH": Op(_update(False), Role.EDITOR, ArticleUpdate), "DELETE": Op(delete, Role.EDITOR)},
    actions={"rate": {"POST": Op(rate, body=RateInput)},
             "bookmark": {"POST": Op(_bookmark(True)), "DELETE": Op(_bookmark(False))},
             "mark_reviewed": {"POST": Op(mark_reviewed, Role.EDITOR)}})
routes = RESOURCE.routes()
