"""An incident above the reader's clearance does not exist for them: not in a list or its count, not
by name, not in similar incidents, not through a write; and nobody classifies above their clearance."""

from __future__ import annotations

from tests.conftest import eventually, unique
from tests.incidents.test_graphql import gql

BASE = "/api/v1/incidents/"


async def test_a_restricted_incident_is_invisible_below_its_classification(client, admin, editor, viewer, bk):
    ns = unique("cls").lower()
    words = "kafka broker partition leader election storm after zookeeper session expiry"
    r = await client.post(BASE, headers=admin, json={"title": f"secret {words}", "namespace": ns, "root_cause": words,
                                                     "data_classification": "RESTRICTED"})
    assert r.status_code == 201 and r.json()["data_classification"] == "RESTRICTED"
    secret = r.json()["name"]
    r = await client.post(BASE, headers=admin, json={"title": f"open {words}", "namespace": ns, "root_cause": words})
    public = r.json()["name"]
    assert r.json()["data_classification"] == "INTERNAL"

    listed = (await client.get(BASE, headers=viewer, params={"namespace": ns})).json()
    assert listed["count"] == 1 and [i["name"] for i in listed["results"]] == [public]
    assert (await client.get(BASE, headers=admin, params={"namespace": ns})).json()["count"] == 2
    missing = (await client.get(f"{BASE}INC-00000000-999/", headers=viewer)).json()
    for method, path, body in (("GET", f"{BASE}{secret}/", None), ("GET", f"{BASE}{secret}/timeline", None),
                               ("GET", f"{BASE}{secret}/similar/", None),
                               ("PATCH", f"{BASE}{secret}/", {"title": "x"}),
                               ("POST", f"{BASE}{secret}/events/", {"events": [
                                   {"type": "Comment", "source": "t", "message": "m"}]}),
                               ("POST", f"{BASE}{secret}/resolve/", {"resolution": "x"})):
        headers = editor if method != "GET" else viewer  # the editor's CONFIDENTIAL is below RESTRICTED too
        r = await client.request(method, path, headers=headers, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == missing["code"] and secret in r.json()["error"]
    doc = await bk.mongo.incidents.find_one({"name": secret})
    assert doc["title"].startswith("secret") and doc["status"] == "OPEN" and len(doc["timeline"]) == 0

    out = await gql(client, viewer, """query($n: String!, $ns: String!) {
        incidents(namespace: $ns) { totalCount results { name } }
        byName: incident(name: $n) { id } }""", n=secret, ns=ns)
    assert out["data"] is None or out["data"].get("byName") is None
    assert out["errors"][0]["extensions"]["code"] == "INCIDENT_NOT_FOUND"
    out = await gql(client, viewer, "query($ns: String!) { incidents(namespace: $ns) { totalCount } }", ns=ns)
    assert out["data"]["incidents"]["totalCount"] == 1

    # the best match for the open incident is the secret one; the viewer never sees it
    async def indexed():
        hits = (await client.get(f"{BASE}{public}/similar/", headers=admin)).json()["results"]
        return [h["name"] for h in hits]
    assert secret in await eventually(indexed)
    names = [h["name"] for h in (await client.get(f"{BASE}{public}/similar/", headers=viewer)).json()["results"]]
    assert secret not in names
    out = await gql(client, viewer, """query($id: ID!) { similarIncidents(incidentId: $id) { incident { name } } }""",
                    id=listed["results"][0]["id"])
    assert secret not in [s["incident"]["name"] for s in out["data"]["similarIncidents"]]


async def test_nobody_classifies_above_their_clearance(client, editor, bk):
    title = unique("above")
    r = await client.post(BASE, headers=editor, json={"title": title, "data_classification": "RESTRICTED"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "data_classification"
    assert await bk.mongo.incidents.count_documents({"title": title}) == 0
    r = await client.post(BASE, headers=editor, json={"title": title, "data_classification": "CONFIDENTIAL"})
    name = r.json()["name"]
    r = await client.patch(f"{BASE}{name}/", headers=editor, json={"data_classification": "RESTRICTED"})
    assert r.status_code == 400
    out = await gql(client, editor, """mutation($n: String!) { updateIncident(name: $n,
        input: {dataClassification: RESTRICTED}) { __typename ... on ValidationError { field } } }""", n=name)
    assert out["data"]["updateIncident"] == {"__typename": "ValidationError", "field": "data_classification"}
    assert (await bk.mongo.incidents.find_one({"name": name}))["data_classification"] == "CONFIDENTIAL"
