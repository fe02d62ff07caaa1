"""Who may apply and rate a recommendation: editors and admins; a viewer only on an incident they are one of
the people of (its assignee, its reporter, or who created it). Anyone else gets a 403 (GraphQL: a
PermissionDeniedError) and nothing changes: the recommendation, the ratings that rank later ones, the audit log.
A recommendation the caller cannot see is a 404 before any of that."""

from __future__ import annotations

import uuid

import pytest

from app.timefmt import utcnow
from tests.conftest import unique
from tests.incidents.test_graphql import gql

BASE = "/api/knowledge/recommendations/"
INCIDENTS = "/api/v1/incidents/"
APPLY = """mutation($id: ID!) { applyRecommendation(id: $id) { __typename
  ... on Recommendation { isApplied } ... on UserError { code } } }"""
RATE = """mutation($id: ID!, $r: Int!) { rateRecommendation(id: $id, rating: $r) { __typename
  ... on Recommendation { effectivenessRating } ... on UserError { code } } }"""


async def incident(client, headers, **fields) -> dict:
    r = await client.post(INCIDENTS, headers=headers, json={"title": unique("Queue backlog"), **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def recommendation(bk, inc: dict, **over) -> dict:
    """A stored SOLUTION recommendation for `inc`, neither applied nor rated, with a target of its own."""
    now = utcnow()
    doc = {"_id": str(uuid.uuid4()), "incident": inc["id"], "recommendation_type": "SOLUTION",
           "target": f"perm-target-{uuid.uuid4().hex[:8]}", "title": "Drain the queue", "description": "",
           "similarity_score": 0.5, "confidence_score": 0.5, "confidence_level": "MEDIUM", "raw_score": 0.5,
           "reasoning": "like before", "matching_factors": [], "suggested_actions": ["drain"],
           "model_version": "hybrid-1",
           "is_applied": False, "applied_at": None, "applied_by": None, "effectiveness_rating": None,
           "data_classification": inc.get("data_classification") or "INTERNAL", "created_at": now, "updated_at": now,
           **over}
    await bk.mongo.recommendations.insert_one(doc)
    return await bk.mongo.recommendations.find_one({"_id": doc["_id"]})  # as stored (times to the millisecond)


async def unchanged(bk, rec: dict) -> None:
    from app.recommendations import feedback
    from app.users.models import Classification, Role, User

    assert await bk.mongo.recommendations.find_one({"_id": rec["_id"]}) == rec
    assert await bk.mongo.audit_log.count_documents({"subject_id": rec["_id"]}) == 0
    anyone = User(id="perm-reader", username="perm-reader", role=Role.ADMIN, clearance=Classification.RESTRICTED)
    assert await feedback.gather(bk, "SOLUTION", [rec["target"]], incident={"data_classification": "RESTRICTED"},
                                 user=anyone) == {}


@pytest.fixture(scope="module")
async def others(bk):
    """A viewer who is nobody's assignee or reporter."""
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=f"bystander-{uuid.uuid4().hex[:6]}", role=Role.VIEWER,
                                                 clearance=Classification.INTERNAL))
    return {"Authorization": f"Token {await issue_token(bk, user=user)}"}


async def test_a_viewer_who_is_not_one_of_the_incidents_people_changes_nothing(client, bk, editor, viewer, tokens):
    inc = await incident(client, editor, assignee=unique("someone"))
    rec = await recommendation(bk, inc)
    r = await client.post(f"{BASE}{rec['_id']}/apply/", headers=viewer)
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED", r.text
    assert set(r.json()) == {"error", "details", "code"}
    r = await client.post(f"{BASE}{rec['_id']}/rate_effectiveness/", headers=viewer, json={"rating": 5})
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED", r.text
    out = await gql(client, viewer, APPLY, id=rec["_id"])
    assert out["data"]["applyRecommendation"] == {"__typename": "PermissionDeniedError", "code": "PERMISSION_DENIED"}
    out = await gql(client, viewer, RATE, id=rec["_id"], r=1)
    assert out["data"]["rateRecommendation"] == {"__typename": "PermissionDeniedError", "code": "PERMISSION_DENIED"}
    await unchanged(bk, rec)
    # still readable, as before
    assert (await client.get(f"{BASE}{rec['_id']}/", headers=viewer)).status_code == 200


async def test_a_hidden_recommendation_is_a_404_before_the_403(client, bk, admin, viewer):
    inc = await incident(client, admin, data_classification="CONFIDENTIAL")
    rec = await recommendation(bk, inc)
    for path, body in ((f"{BASE}{rec['_id']}/apply/", None),
                       (f"{BASE}{rec['_id']}/rate_effectiveness/", {"rating": 3})):
        r = await client.post(path, headers=viewer, json=body)
        assert r.status_code == 404 and r.json()["code"] == "RECOMMENDATION_NOT_FOUND", path
    out = await gql(client, viewer, APPLY, id=rec["_id"])
    assert out["data"]["applyRecommendation"] == {"__typename": "NotFoundError", "code": "RECOMMENDATION_NOT_FOUND"}
    out = await gql(client, viewer, RATE, id=rec["_id"], r=3)
    assert out["data"]["rateRecommendation"] == {"__typename": "NotFoundError", "code": "RECOMMENDATION_NOT_FOUND"}
    await unchanged(bk, rec)


async def test_editors_and_the_incidents_people_apply_and_rate(client, bk, editor, admin, viewer, tokens, others):
    me = tokens["viewer_user"].username
    # the assignee (REST) and the reporter (GraphQL), both viewers
    assigned = await recommendation(bk, await incident(client, editor, assignee=me))
    r = await client.post(f"{BASE}{assigned['_id']}/apply/", headers=viewer)
    assert r.status_code == 200 and r.json()["is_applied"] and r.json()["applied_by_username"] == me, r.text
    r = await client.post(f"{BASE}{assigned['_id']}/rate_effectiveness/", headers=viewer, json={"rating": 4})
    assert r.status_code == 200 and r.json()["effectiveness_rating"] == 4
    assert await bk.mongo.audit_log.count_documents({"subject_id": assigned["_id"], "action": "apply"}) == 1
    assert await bk.mongo.audit_log.count_documents({"subject_id": assigned["_id"], "action": "rate"}) == 1
    reported = await recommendation(bk, await incident(client, editor, reporter=me))
    assert (await gql(client, viewer, APPLY, id=reported["_id"]))["data"]["applyRecommendation"]["isApplied"] is True
    out = await gql(client, viewer, RATE, id=reported["_id"], r=2)
    assert out["data"]["rateRecommendation"]["effectivenessRating"] == 2
    # another viewer is not one of those incidents' people
    other = await recommendation(bk, await incident(client, editor, assignee=me))
    assert (await client.post(f"{BASE}{other['_id']}/apply/", headers=others)).status_code == 403
    await unchanged(bk, other)
    # editors and admins, on any incident they may see
    for who in (editor, admin):
        rec = await recommendation(bk, await incident(client, admin, assignee=unique("someone")))
        assert (await client.post(f"{BASE}{rec['_id']}/apply/", headers=who)).json()["is_applied"] is True
        r = await client.post(f"{BASE}{rec['_id']}/rate_effectiveness/", headers=who, json={"rating": 5})
        assert r.status_code == 200 and r.json()["effectiveness_rating"] == 5
