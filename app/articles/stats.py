"""Knowledge-base statistics, computed only over the articles the caller may see; usage figures
only over the usage events of people who could see no more than the caller (`usage_scope`).

The figures depend on the caller only through those two filters, so callers with the same filters
share one computation: a request that finds one running for its filters (another alias of the same
document, another reader of the same clearance) awaits that one instead of scanning again, and with
`statistics_cache_seconds` a finished result is reused that long (per process)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any

from app.articles.service import REVIEWABLE, usage_scope, visibility
from app.backends import Backends
from app.timefmt import utcnow
from app.users.models import User

TOP = 5         # most viewed, best rated
TOP_TERMS = 10  # top search terms, top zero-result terms

_running: dict[tuple, asyncio.Future] = {}
_cached: dict[tuple, tuple[float, dict[str, Any]]] = {}
_CACHED_MAX = 256  # distinct filters kept (each reader's own filter when they see only published articles)


def _counts(rows: list[dict]) -> dict[str, int]:
    return {r["_id"]: r["n"] for r in rows if r["_id"] is not None}


def _key(bk: Backends, user: User) -> tuple:
    """What the figures depend on: the database, and the caller's two filters."""
    filters = json.dumps([visibility(user), usage_scope(user)], sort_keys=True, default=str)
    return id(bk), id(asyncio.get_running_loop()), filters


async def statistics(bk: Backends, *, user: User) -> dict[str, Any]:
    """Counts by type, status, category and difficulty; views; ratings; featured; due for review;
    most viewed and best rated; and usage figures (searches, zero-result searches, top terms,
    click-through). Shared between callers with the same filters (module docstring)."""
    key = _key(bk, user)
    ttl = bk.settings.statistics_cache_seconds
    if ttl > 0 and (hit := _cached.get(key)) is not None and time.monotonic() - hit[0] < ttl:
        return copy.deepcopy(hit[1])
    running = _running.get(key)
    if running is None:
        running = _running[key] = asyncio.ensure_future(_compute(bk, user=user))

        def done(task: asyncio.Future, key=key) -> None:
            _running.pop(key, None)
            if ttl > 0 and not task.cancelled() and task.exception() is None:
                if len(_cached) >= _CACHED_MAX:
                    _cached.clear()
                _cached[key] = (time.monotonic(), task.result())

        running.add_done_callback(done)
    # shielded: a caller that gives up (its deadline) does not cancel the others' computation
    return copy.deepcopy(await asyncio.shield(running))


async def _compute(bk: Backends, *, user: User) -> dict[str, Any]:
    now = utcnow()
    brief = {"_id": 1, "slug": 1, "title": 1, "view_count": 1, "rating_average": 1, "rating_count": 1}
    pipeline = [
        {"$match": visibility(user)},
        {"$facet": {
            "totals": [{"$group": {"_id": None, "n": {"$sum": 1}, "views": {"$sum": "$view_count"},
                                   "rating_sum": {"$sum": "$rating_sum"}, "rating_count": {"$sum": "$rating_count"},
                                   "bookmarks": {"$sum": "$bookmark_count"},
                                   "featured": {"$sum": {"$cond": ["$is_featured", 1, 0]}},
                                   "due": {"$sum": {"$cond": [{"$and": [
                                       {"$in": ["$status", REVIEWABLE]},
                                       {"$eq": [{"$type": "$next_review_due"}, "date"]},
                                       {"$lte": ["$next_review_due", now]}]}, 1, 0]}}}}],
            "by_type": [{"$group": {"_id": "$article_type", "n": {"$sum": 1}}}],
            "by_status": [{"$group": {"_id": "$status", "n": {"$sum": 1}}}],
            "by_category": [{"$group": {"_id": "$category", "n": {"$sum": 1}}}],
            "by_difficulty": [{"$group": {"_id": "$difficulty_level", "n": {"$sum": 1}}}],
            "most_viewed": [{"$match": {"view_count": {"$gt": 0}}}, {"$sort": {"view_count": -1, "_id": 1}},
                            {"$limit": TOP}, {"$project": brief}],
            "best_rated": [{"$match": {"rating_count": {"$gt": 0}}},
                           {"$sort": {"rating_average": -1, "rating_count": -1, "_id": 1}}, {"$limit": TOP},
                           {"$project": brief}],
        }},
    ]
    async def articles() -> dict[str, Any]:
        return (await (await bk.mongo.articles.aggregate(pipeline)).to_list(None))[0]

    facets, usage = await asyncio.gather(articles(), usage_figures(bk, user=user))
    totals = facets["totals"][0] if facets["totals"] else {}
    rating_count = totals.get("rating_count", 0)

    def brief_out(d: dict) -> dict:
        return {"id": d["_id"], "slug": d["slug"], "title": d["title"], "view_count": d.get("view_count", 0),
                "rating_average": round(d.get("rating_average", 0.0), 4), "rating_count": d.get("rating_count", 0)}

    return {
        "total_articles": totals.get("n", 0),
        "by_type": _counts(facets["by_type"]),
        "by_status": _counts(facets["by_status"]),
        "by_category": _counts(facets["by_category"]),
        "by_difficulty": _counts(facets["by_difficulty"]),
        "total_views": totals.get("views", 0),
        "total_ratings": rating_count,
        "average_rating": round(totals["rating_sum"] / rating_count, 4) if rating_count else None,
        "total_bookmarks": totals.get("bookmarks", 0),
        "featured_count": totals.get("featured", 0),
        "due_for_review_count": totals.get("due", 0),
        "most_viewed": [brief_out(d) for d in facets["most_viewed"]],
        "best_rated": [brief_out(d) for d in facets["best_rated"]],
        "usage": usage,
    }


async def usage_figures(bk: Backends, *, user: User) -> dict[str, Any]:
    """Searches, searches with no result, the most searched terms, click-through from searches,
    views, ratings and bookmarks — all over the events of people who could see no more than `user`
    (a search tells what its author knows; its result count, what they could see)."""
    scope = usage_scope(user)
    term = {"$toLower": {"$trim": {"input": "$query"}}}
    searches = [
        {"$match": {**scope, "kind": "article.search"}},
        {"$facet": {
            "totals": [{"$group": {"_id": None, "n": {"$sum": 1},
                                   "zero": {"$sum": {"$cond": [{"$eq": ["$result_count", 0]}, 1, 0]}}}}],
            "terms": [{"$group": {"_id": term, "n": {"$sum": 1}}}, {"$sort": {"n": -1, "_id": 1}},
                      {"$limit": TOP_TERMS}],
            "zero_terms": [{"$match": {"result_count": 0}}, {"$group": {"_id": term, "n": {"$sum": 1}}},
                           {"$sort": {"n": -1, "_id": 1}}, {"$limit": TOP_TERMS}],
        }},
    ]
    # a search with results counts as clicked when its author then opened an article with its
    # search_id (an id passed by anyone else, or made up, counts for nothing): the searches and the
    # views naming a search, grouped by that search — one pass, not one lookup per search
    is_search = {"$eq": ["$kind", "article.search"]}
    clicks = [
        {"$match": {"$or": [{**scope, "kind": "article.search", "result_count": {"$gt": 0}},
                            {"kind": "article.view", "search_id": {"$type": "string"}}]}},
        {"$group": {"_id": {"$cond": [is_search, "$_id", "$search_id"]},
                    "author": {"$max": {"$cond": [is_search, "$user_id", None]}},
                    "viewers": {"$addToSet": {"$cond": [is_search, "$$REMOVE", "$user_id"]}}}},
        {"$match": {"author": {"$ne": None}, "$expr": {"$in": ["$author", "$viewers"]}}},
        {"$count": "n"},
    ]
    others = [{"$match": {**scope, "kind": {"$in": ["article.view", "article.rate", "article.bookmark"]}}},
              {"$group": {"_id": "$kind", "n": {"$sum": 1}}}]

    async def run(pipeline: list[dict]) -> list[dict]:
        return await (await bk.mongo.usage_events.aggregate(pipeline)).to_list(None)

    [facets], clicked_rows, other_rows = await asyncio.gather(run(searches), run(clicks), run(others))
    totals = facets["totals"][0] if facets["totals"] else {"n": 0, "zero": 0}
    with_results = totals["n"] - totals["zero"]
    clicked = clicked_rows[0]["n"] if clicked_rows else 0
    counts = {r["_id"]: r["n"] for r in other_rows}
    return {
        "searches": totals["n"],
        "searches_without_results": totals["zero"],
        "top_search_terms": [{"query": r["_id"], "count": r["n"]} for r in facets["terms"]],
        "top_zero_result_terms": [{"query": r["_id"], "count": r["n"]} for r in facets["zero_terms"]],
        "views": counts.get("article.view", 0),
        "searches_with_click": clicked,
        "click_through_rate": round(clicked / with_results, 4) if with_results else None,
        "ratings": counts.get("article.rate", 0),
        "bookmarks": counts.get("article.bookmark", 0),
    }
