"""similar/ narrows its candidates by namespace, status and recency, and answers compact hits."""

from __future__ import annotations

from app.indexing import outbox
from tests.conftest import unique
from tests.incidents.test_graphql import gql

BASE = "/api/v1/incidents/"


async def test_similar_takes_namespace_status_and_days_and_leaves_timelines_out(client, editor, bk):
    ns, tag = unique("simf").lower().replace("_", "-")[:30], unique("zq").replace("-", "")
    body = {"title": f"Checkout {tag} latency after the orders pool ran out", "severity": "HIGH",
            "affected_services": ["checkout"], "namespace": ns,
            "timeline": [{"type": "Detection", "source": "alerting", "message": f"p99 {tag} above 2 s"}]}
    made = []
    for extra in ({"status": "RESOLVED", "root_cause": "pool too small"}, {"status": "OPEN"},
                  {"status": "RESOLVED", "root_cause": "pool too small", "detected_at": "2020-01-01T00:00:00Z"}):
        r = await client.post(BASE, headers=editor, json={**body, **extra})
        assert r.status_code == 201, r.text
        made.append(r.json())
    query = (await client.post(BASE, headers=editor, json={**body, "status": "OPEN"})).json()
    await outbox.flush(bk, index="incidents")
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))

    async def names(**params):
        r = await client.get(f"{BASE}{query['name']}/similar/", headers=editor, params={"limit": 10, **params})
        assert r.status_code == 200, r.text
        for hit in r.json()["results"]:
            assert "timeline" not in hit and "score" in hit and "event_count" in hit
        return {h["name"] for h in r.json()["results"]}

    assert {m["name"] for m in made} <= await names(namespace=ns)
    assert await names(namespace=ns, status="RESOLVED") == {made[0]["name"], made[2]["name"]}
    assert await names(namespace=ns, status="resolved,closed", days=30) == {made[0]["name"]}
    r = await client.get(f"{BASE}{query['name']}/similar/", headers=editor, params={"status": "DONE"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "status", r.text
    out = await gql(client, editor, """query($id: ID!, $ns: String) { similarIncidents(incidentId: $id, namespace: $ns,
      status: [RESOLVED], days: 30, limit: 10) { incident { name } } }""", id=query["id"], ns=ns)
    assert {h["incident"]["name"] for h in out["data"]["similarIncidents"]} == {made[0]["name"]}
