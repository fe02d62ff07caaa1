"""REST routes under /api/knowledge/knowledge-articles/ — parse, call the service, shape the output."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.articles import ranking, service, stats
from app.articles.models import ArticleCreate, ArticleUpdate, RateInput, SearchInput
from app.errors import ValidationFailed
from app.http import ratelimit
from app.http.auth import current_user
from app.http.responses import JSON, read_body
from app.inputs import ascii_int
from app.listing import Page, drf_response
from app.timefmt import isoz
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


async def _page(request: Request, page: Page) -> JSON:
    return JSON(drf_response(str(request.url), page, await serialize(request, page.items)))


async def list_or_create(request: Request) -> JSON:
    bk, user = request.app.state.backends, current_user(request)
    if request.method == "POST":
        doc = await service.create_article(bk, data=await read_body(request, ArticleCreate), user=user)
        return JSON((await serialize(request, [doc]))[0], status_code=201)
    return await _page(request, await service.list_articles(bk, user=user, params=request.query_params))


async def detail(request: Request) -> Response:
    bk, user, slug = request.app.state.backends, current_user(request), request.path_params["slug"]
    if request.method == "GET":
        doc = await service.view_article(bk, slug=slug, user=user, search_id=request.query_params.get("search_id"))
    elif request.method == "DELETE":
        await service.delete_article(bk, slug=slug, user=user)
        return Response(status_code=204)
    else:
        replace = request.method == "PUT"
        data = await read_body(request, ArticleCreate if replace else ArticleUpdate)
        doc = await service.update_article(bk, slug=slug, data=data, user=user, replace=replace)
    return JSON((await serialize(request, [doc]))[0])


async def rate(request: Request) -> JSON:
    data = await read_body(request, RateInput)
    return JSON(await service.rate_article(request.app.state.backends, slug=request.path_params["slug"],
                                           user=current_user(request), data=data))


async def bookmark(request: Request) -> JSON:
    result = await service.set_bookmark(request.app.state.backends, slug=request.path_params["slug"],
                                        user=current_user(request), on=request.method == "POST")
    return JSON(result, status_code=201 if request.method == "POST" and result["changed"] else 200)


async def mark_reviewed(request: Request) -> JSON:
    doc = await service.mark_reviewed(request.app.state.backends, slug=request.path_params["slug"],
                                      user=current_user(request))
    return JSON((await serialize(request, [doc]))[0])


async def search(request: Request) -> JSON:
    result = await ranking.search(request.app.state.backends, user=current_user(request),
                                  data=await read_body(request, SearchInput))
    shaped = [{"id": r["doc"]["_id"], **{k: r["doc"].get(k) for k in SEARCH_FIELDS},
               **{k: r[k] for k in ranking.SCORE_KEYS}} for r in result["results"]]
    return JSON({**result, "results": shaped})


async def due_for_review(request: Request) -> JSON:
    return await _page(request, await service.due_for_review(request.app.state.backends, user=current_user(request),
                                                             params=request.query_params))


async def popular(request: Request) -> JSON:
    limit = ascii_int(request.query_params.get("limit", "10"))
    if limit is None or not 1 <= limit <= 100:
        raise ValidationFailed("limit must be an integer between 1 and 100", {"field": "limit"})
    docs = await ranking.popular(request.app.state.backends, user=current_user(request), limit=limit)
    items = await serialize(request, docs)
    return JSON({"results": [{**i, "popularity_score": round(d["popularity_score"], 4)} for i, d in zip(items, docs)]})


async def statistics(request: Request) -> JSON:
    return JSON(await stats.statistics(request.app.state.backends, user=current_user(request)))


async def bookmarks(request: Request) -> JSON:
    return await _page(request, await service.my_bookmarks(request.app.state.backends, user=current_user(request),
                                                           params=request.query_params))


ratelimit.SEARCH_PATHS.add(BASE + "search/")

routes = [
    Route(BASE, list_or_create, methods=["GET", "POST"]),
    Route(BASE + "search/", search, methods=["POST"]),
    Route(BASE + "due_for_review/", due_for_review, methods=["GET"]),
    Route(BASE + "popular/", popular, methods=["GET"]),
    Route(BASE + "statistics/", statistics, methods=["GET"]),
    Route(BASE + "bookmarks/", bookmarks, methods=["GET"]),
    Route(BASE + "{slug}/", detail, methods=["GET", "PUT", "PATCH", "DELETE"]),
    Route(BASE + "{slug}/rate/", rate, methods=["POST"]),
    Route(BASE + "{slug}/bookmark/", bookmark, methods=["POST", "DELETE"]),
    Route(BASE + "{slug}/mark_reviewed/", mark_reviewed, methods=["POST"]),
]
