"""Recommendation statistics: counts by type and level, how many were applied, and how helpful responders
rated them per week, over what the caller may see."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app import classification
from app.backends import Backends
from app.errors import ValidationFailed
from app.recommendations.models import ConfidenceLevel, RecommendationType
from app.timefmt import utcnow
from app.users.models import User


async def statistics(bk: Backends, *, user: User, weeks: int = 12) -> dict[str, Any]:
    """Counts by type and level, applied rate, mean effectiveness by type, and ratings per week — over what
    the user may see."""
    if not 1 <= weeks <= 104:
        raise ValidationFailed("weeks must be between 1 and 104", {"field": "weeks"})
    visible = classification.mongo_filter(user)
    since = utcnow() - timedelta(weeks=weeks)
    [row] = await (await bk.mongo.recommendations.aggregate([
        {"$match": visible},
        {"$facet": {
            "total": [{"$count": "n"}],
            "by_type": [{"$group": {"_id": "$recommendation_type", "n": {"$sum": 1},
                                    "applied": {"$sum": {"$cond": ["$is_applied", 1, 0]}},
                                    "rated": {"$sum": {"$cond": [{"$ne": ["$effectiveness_rating", None]}, 1, 0]}},
                                    "mean": {"$avg": "$effectiveness_rating"}}}],
            "by_level": [{"$group": {"_id": "$confidence_level", "n": {"$sum": 1}}}],
            "weekly": [{"$match": {"rated_at": {"$gte": since}}},
                       {"$group": {"_id": {"$dateTrunc": {"date": "$rated_at", "unit": "week"}},
                                   "ratings": {"$sum": 1}, "mean": {"$avg": "$effectiveness_rating"}}},
                       {"$sort": {"_id": 1}}],
        }}])).to_list(None)
    total = row["total"][0]["n"] if row["total"] else 0
    by_type = {r["_id"]: r for r in row["by_type"]}
    applied = sum(r["applied"] for r in row["by_type"])
    return {
        "total_recommendations": total,
        "by_type": {t.value: by_type.get(t.value, {}).get("n", 0) for t in RecommendationType},
        "by_confidence_level": {lv.value: next((r["n"] for r in row["by_level"] if r["_id"] == lv.value), 0)
                                for lv in ConfidenceLevel},
        "applied_count": applied,
        "applied_rate": round(applied / total, 4) if total else 0.0,
        "average_effectiveness_by_type": {t.value: (round(by_type[t.value]["mean"], 2)
                                                    if t.value in by_type and by_type[t.value]["mean"] is not None
                                                    else None) for t in RecommendationType},
        "feedback_over_time": [{"week": _iso_week(r["_id"]), "ratings": r["ratings"], "average_rating": round(r["mean"], 2)}
                               for r in row["weekly"]],
    }


def _iso_week(start: datetime) -> str:
    return start.date().isoformat()
