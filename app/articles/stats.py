"""Knowledge-base statistics, computed only over the articles the caller may see; usage figures
only over the usage events of people who could see no more than the caller (`usage_scope`)."""

from __future__ import annotations

from typing import Any

from app.articles.service import REVIEWABLE, usage_scope, visibility
from app.backends import Backends
from app.timefmt import utcnow
from app.users.models import User

TOP = 5


def _counts(rows: list[dict]) -> dict[str, int]:
    return {r["_id"]: r["n"] for r in rows if r["_id"] is not None}


async def statistics(bk: Backends, *, user: User) -> dict[str, Any]:
    """Counts by type, status, category and difficulty; views; ratings; featured; due for review;
    most viewed and best rated; and usage figures (searches, zero-result searches, top terms,
    click-through)."""
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
            "most_viewed": [{"$sort": {"view_count": -1, "_id": 1}}, {"$limit": TOP}, {"$project": brief}],
            "best_rated": [{"$match": {"rating_count": {"$gt": 0}}},
                           {"$sort": {"rating_average": -1, "rating_count": -1, "_id": 1}}, {"$limit": TOP},
                           {"$project": brief}],
        }},
    ]
    facets = (await (await bk.mongo.articles.aggregate(pipeline)).to_list(None))[0]
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
        "usage": await usage_figures(bk, user=user),
    }


async def usage_figures(bk: Backends, *, user: User) -> dict[str, Any]:
    """Searches, searches with no result, the most searched terms, click-through from searches,
    views, ratings and bookmarks — all over the events of people who could see no more than `user`
    (a search tells what its author knows; its result count, what they could see)."""
    scope = usage_scope(user)
    term = {"$toLower": {"$trim": {"input": "$query"}}}
    pipeline = [
        {"$match": {**scope, "kind": "article.search"}},
        {"$facet": {
            "totals": [{"$group": {"_id": None, "n": {"$sum": 1},
                                   "zero": {"$sum": {"$cond": [{"$eq": ["$result_count", 0]}, 1, 0]}}}}],
            "terms": [{"$group": {"_id": term, "n": {"$sum": 1}}}, {"$sort": {"n": -1, "_id": 1}}, {"$limit": 10}],
            "zero_terms": [{"$match": {"result_count": 0}}, {"$group": {"_id": term, "n": {"$sum": 1}}},
                           {"$sort": {"n": -1, "_id": 1}}, {"$limit": 10}],
            # a search with results counts as clicked when its author then opened an article with
            # its search_id (an id passed by anyone else, or made up, counts for nothing)
            "clicked": [{"$match": {"result_count": {"$gt": 0}}},
                        {"$lookup": {"from": "usage_events", "localField": "_id", "foreignField": "search_id",
                                     "let": {"uid": "$user_id"},
                                     "pipeline": [{"$match": {"kind": "article.view",
                                                              "$expr": {"$eq": ["$user_id", "$$uid"]}}},
                                                  {"$limit": 1}, {"$project": {"_id": 1}}],
                                     "as": "views"}},
                        {"$match": {"views.0": {"$exists": True}}}, {"$count": "n"}],
        }},
    ]
    facets = (await (await bk.mongo.usage_events.aggregate(pipeline)).to_list(None))[0]
    totals = facets["totals"][0] if facets["totals"] else {"n": 0, "zero": 0}
    with_results = totals["n"] - totals["zero"]
    clicked = facets["clicked"][0]["n"] if facets["clicked"] else 0
    others = await (await bk.mongo.usage_events.aggregate([
        {"$match": {**scope, "kind": {"$in": ["article.view", "article.rate", "article.bookmark"]}}},
        {"$group": {"_id": "$kind", "n": {"$sum": 1}}}])).to_list(None)
    counts = {r["_id"]: r["n"] for r in others}
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
