"""Admins delete an incident: gone from MongoDB and the search index, audit-logged; what refers to it is
handled as documented (postmortems and duplicates refuse it; recommendations and generation logs go with it;
patterns and articles drop it from their sources)."""

from __future__ import annotations

from app.indexing import outbox
from tests.conftest import eventually, unique
from tests.incidents.test_graphql import gql

BASE = "/api/v1/incidents/"


async def new(client, headers, **fields) -> dict:
    r = await client.post(BASE, headers=headers, json={"title": unique("Deletable ledger outage"), **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def test_an_admin_deletes_an_incident_and_what_points_at_it_follows(client, admin, editor, viewer, bk):
    inc = await new(client, editor, severity="LOW")
    other = await new(client, editor, severity="LOW")
    r = await client.post("/api/knowledge/learning-patterns/", headers=admin, json={
        "name": unique("Deleted source"), "pattern_type": "ROOT_CAUSE", "source_incidents": [inc["id"], other["id"]]})
    assert r.status_code == 201, r.text
    pattern = r.json()
    r = await client.post("/api/knowledge/knowledge-articles/", headers=admin, json={
        "title": unique("Article about it"), "content": "x", "status": "PUBLISHED", "article_type": "RUNBOOK",
        "category": "Database", "related_incidents": [inc["id"]]})
    assert r.status_code == 201, r.text
    article = r.json()
    await bk.mongo.recommendations.insert_many([
        {"_id": unique("rec"), "incident": inc["id"], "target": other["id"], "recommendation_type": "SIMILAR_INCIDENT"},
        {"_id": unique("rec"), "incident": other["id"], "related_incident": inc["id"], "target": inc["id"],
         "recommendation_type": "SIMILAR_INCIDENT"}])
    await outbox.flush(bk, index="incidents")

    for who in (viewer, editor):  # not theirs to do, whatever the incident
        r = await client.delete(f"{BASE}{inc['name']}/", headers=who)
        assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED", r.text
    r = await client.delete(f"{BASE}{inc['name']}", headers=admin)
    assert r.status_code == 204, r.text
    assert (await client.get(f"{BASE}{inc['name']}/", headers=admin)).status_code == 404
    assert await bk.mongo.recommendations.count_documents({"$or": [{"incident": inc["id"]},
                                                                   {"related_incident": inc["id"]}]}) == 0
    got = (await client.get(f"/api/knowledge/learning-patterns/{pattern['id']}/", headers=admin)).json()
    assert got["source_incidents"] == [other["id"]] and got["frequency"] == 1
    got = (await client.get(f"/api/knowledge/knowledge-articles/{article['slug']}/", headers=admin)).json()
    assert got["related_incidents"] == []
    entry = await bk.mongo.audit_log.find_one({"subject_type": "incident", "subject_id": inc["id"], "action": "delete"})
    assert entry and entry["changes"]["name"] == inc["name"]

    async def unindexed():
        await outbox.flush(bk, index="incidents")
        await bk.search.indices.refresh(index=bk.index_alias("incidents"))
        return not await bk.search.exists(index=bk.index_alias("incidents"), id=inc["id"])
    await eventually(unindexed)
    r = await client.delete(f"{BASE}{inc['name']}/", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "INCIDENT_NOT_FOUND"


async def test_postmortems_and_duplicates_refuse_the_deletion(client, admin, editor, bk):
    inc = await new(client, editor)
    r = await client.post("/api/knowledge/postmortems/", headers=editor, json={"title": "pm", "incident": inc["id"]})
    assert r.status_code == 201, r.text
    r = await client.delete(f"{BASE}{inc['name']}/", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "INCIDENT_HAS_POSTMORTEMS", r.text
    canonical, twin = await new(client, editor), await new(client, editor)
    r = await client.post(f"{BASE}{twin['name']}/mark_duplicate/", headers=editor,
                          json={"duplicate_of": canonical["name"]})
    assert r.status_code == 200, r.text
    r = await client.delete(f"{BASE}{canonical['name']}/", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "INCIDENT_HAS_DUPLICATES", r.text
    out = await gql(client, admin, "mutation($n: String!) { deleteIncident(name: $n) { __typename "
                    "... on DeletedIncident { name } ... on UserError { code } } }", n=twin["name"])
    assert out["data"]["deleteIncident"] == {"__typename": "DeletedIncident", "name": twin["name"]}
    assert await bk.mongo.incidents.count_documents({"_id": twin["id"]}) == 0
