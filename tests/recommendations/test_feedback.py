"""Feedback counts only ratings the new recommendation's readers could see (app/recommendations/feedback.py)."""

from __future__ import annotations

import uuid

import pytest

from app.users.models import Classification, Role, User


@pytest.fixture
async def rated(bk):
    """Targets rated on recommendations of several classifications: A (5, 3) INTERNAL, B (1) PUBLIC,
    C (5) CONFIDENTIAL, D (4) RESTRICTED, and A once more (1) CONFIDENTIAL."""
    tag = uuid.uuid4().hex[:8]
    recs = [{"_id": f"fbr-{tag}-{i}", "incident": f"fb-incident-{tag}-{i}", "recommendation_type": "KNOWLEDGE_ARTICLE",
             "target": f"{target}-{tag}", "effectiveness_rating": rating, "data_classification": level}
            for i, (target, rating, level) in enumerate([
                ("A", 5, "INTERNAL"), ("A", 3, "INTERNAL"), ("B", 1, "PUBLIC"), ("C", 5, "CONFIDENTIAL"),
                ("D", 4, "RESTRICTED"), ("A", 1, "CONFIDENTIAL")])]
    recs.append({"_id": f"fbr-{tag}-unrated", "incident": f"fb-incident-{tag}-u", "target": f"E-{tag}",
                 "recommendation_type": "KNOWLEDGE_ARTICLE", "effectiveness_rating": None,
                 "data_classification": "PUBLIC"})
    await bk.mongo.recommendations.insert_many(recs)
    try:
        yield tag
    finally:
        await bk.mongo.recommendations.delete_many({"_id": {"$in": [r["_id"] for r in recs]}})


def reader(level: str) -> User:
    return User(id="fb-reader", username="fb-reader", role=Role.EDITOR, clearance=Classification(level))


async def test_only_ratings_the_new_recommendations_readers_may_see_count(bk, rated):
    from app.recommendations import feedback

    tag = rated
    targets = [f"{t}-{tag}" for t in "ABCDE"]

    async def means(incident_level: str, clearance: str) -> dict[str, tuple[float, int]]:
        fb = await feedback.gather(bk, "KNOWLEDGE_ARTICLE", targets, incident={"data_classification": incident_level},
                                   user=reader(clearance))
        return {k.split("-")[0]: (round(v.mean, 3), v.count) for k, v in fb.items()}

    # an INTERNAL incident: its recommendations may be read at INTERNAL, so CONFIDENTIAL and RESTRICTED
    # ratings stay out, even for a requester cleared for them
    assert await means("INTERNAL", "RESTRICTED") == {"A": (4.0, 2), "B": (1.0, 1)}
    # a CONFIDENTIAL incident and a requester cleared for it: those count too (A's third rating with them)
    assert await means("CONFIDENTIAL", "CONFIDENTIAL") == {"A": (3.0, 3), "B": (1.0, 1), "C": (5.0, 1)}
    # a requester below the incident: only what the requester may see
    assert await means("RESTRICTED", "INTERNAL") == {"A": (4.0, 2), "B": (1.0, 1)}
    assert await means("RESTRICTED", "RESTRICTED") == {"A": (3.0, 3), "B": (1.0, 1), "C": (5.0, 1), "D": (4.0, 1)}
    assert await feedback.gather(bk, "SOLUTION", targets, incident={}, user=reader("RESTRICTED")) == {}
    assert await feedback.gather(bk, "KNOWLEDGE_ARTICLE", [], incident={}, user=reader("RESTRICTED")) == {}
