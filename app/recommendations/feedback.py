"""What earlier effectiveness ratings say about each candidate target.

A target (an article, the incident whose fix is suggested, an expert, a pattern) gathers the ratings its
recommendations of the same type received: their mean and count (`engine.Feedback`; how they move the
confidence is `engine.feedback_shift`).

Only ratings the new recommendation's readers could see count: ratings of recommendations classified at
or below both the requester's clearance and this incident's classification (a recommendation is never
less secret than its incident). So neither the confidence nor the reasoning's count of ratings carries
anything from a recommendation a reader of the new one may not see.

Tried and not kept: weighing each rating by how alike its incident is to this one (cosine of their
embeddings). On bench/feedback_loop.py it lowered the gain (precision@3 after − control +0.107 with half
of a rating's weight by likeness, against +0.141 unweighted): what helps there is a target's usefulness
over all incidents, and weighting spreads fewer effective ratings over it. Nor counting a similar
incident's feedback in proportion to its similarity below 0.5 (2026-12-06, after the demo offered
Facebook's BGP withdrawal, similarity 0.20 but rated helpful for two routing incidents, at 0.72 HIGH for
a DDoS): on the bench (seed 7) SIMILAR_INCIDENT's held-out AUC with the prior fell from 0.699 to 0.606,
the gain in precision@3 from feedback from +0.144 to +0.087, and the refit's overall AUC from 0.757 to 0.730.
"""

from __future__ import annotations

from typing import Any, Mapping

from app import classification
from app.backends import Backends
from app.recommendations import engine
from app.users.models import Classification, User


def visible_ratings(user: User, incident: Mapping[str, Any]) -> list[str]:
    """The classifications of rated recommendations that may feed a recommendation for `incident`."""
    own = Classification(incident.get(classification.FIELD) or classification.DEFAULT.value)
    return min(user.clearance, own, key=lambda c: c.rank).visible()


async def gather(bk: Backends, rec_type: str, targets: list[str], *, incident: Mapping[str, Any],
                 user: User) -> dict[str, engine.Feedback]:
    """Mean effectiveness rating and count per target (targets never rated, or rated only where the
    readers may not look, have none)."""
    if not targets:
        return {}
    rows = await (await bk.mongo.recommendations.aggregate([
        {"$match": {"recommendation_type": rec_type, "target": {"$in": targets},
                    "effectiveness_rating": {"$ne": None},
                    classification.FIELD: {"$in": visible_ratings(user, incident)}}},
        {"$group": {"_id": "$target", "mean": {"$avg": "$effectiveness_rating"}, "count": {"$sum": 1}}},
    ])).to_list(None)
    return {r["_id"]: engine.Feedback(mean=r["mean"], count=r["count"]) for r in rows}
