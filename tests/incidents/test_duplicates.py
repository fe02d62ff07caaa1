"""Close as duplicate: two reports of one outage. The later one is CLOSED with `duplicate_of` naming the
canonical, in one transaction with its events, audit record and outbox entry; the rules (visible
canonical, no self, no chains, idempotent, replaceable, undone by reopening), what readers see, and
similar incidents leaving the twins out."""

from __future__ import annotations

import json

from app import demo
from tests.conftest import eventually, unique
from tests.incidents.test_graphql import gql

BASE = "/api/v1/incidents/"
WORDS = "etcd leader election flapping after disk latency spike on control plane nodes"
MARKS = {"action": {"$in": ["mark_duplicate", "unmark_duplicate"]}}  # its create and updates are audited too


async def make(client, headers, ns: str, title: str, **extra) -> dict:
    r = await client.post(BASE, headers=headers, json={"title": title, "namespace": ns, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def mark(client, headers, name: str, canonical: str):
    return await client.post(f"{BASE}{name}/mark_duplicate/", headers=headers, json={"duplicate_of": canonical})


async def test_mark_duplicate_closes_and_records_it_once(client, editor, viewer, bk):
    ns = unique("dup").lower()
    canonical = await make(client, editor, ns, "Checkout 502s")
    twin = await make(client, editor, ns, "Checkout returns 502", status="INVESTIGATING")
    r = await mark(client, editor, twin["name"], canonical["name"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "CLOSED" and out["duplicate_of"] == canonical["name"] and out["resolved_at"]
    assert [(e["type"], e["source"]) for e in out["timeline"]] == [("StatusChange", "incident-service"),
                                                                   ("Comment", "incident-service")]
    status_event, comment = out["timeline"]
    assert status_event["message"] == "Status changed from INVESTIGATING to CLOSED"
    assert canonical["name"] in comment["message"] and comment["details"]["actor"] == status_event["details"]["actor"]
    stored = await bk.mongo.incidents.find_one({"name": twin["name"]})
    assert stored["duplicate_of"] == canonical["id"]  # the canonical's _id, shown as its name
    audit = await bk.mongo.audit_log.find({"subject_type": "incident", "subject_id": twin["id"], **MARKS}).to_list(None)
    assert [a["action"] for a in audit] == ["mark_duplicate"]
    assert audit[0]["changes"]["duplicate_of"] == {"from": None, "to": canonical["id"]}

    # the same mark again changes nothing: 200, no event appended, no audit record
    again = await mark(client, editor, twin["name"], canonical["name"])
    assert again.status_code == 200 and again.json()["duplicate_of"] == canonical["name"]
    assert len(again.json()["timeline"]) == 2 and again.json()["updated_at"] == out["updated_at"]
    assert await bk.mongo.audit_log.count_documents({"subject_id": twin["id"], "action": {"$ne": "create"}}) == 1

    # readers see the canonical's name in the detail and the list; the canonical itself is no duplicate
    detail = (await client.get(f"{BASE}{twin['name']}/", headers=viewer)).json()
    assert detail["duplicate_of"] == canonical["name"]
    listed = {i["name"]: i["duplicate_of"] for i in
              (await client.get(BASE, headers=viewer, params={"namespace": ns})).json()["results"]}
    assert listed == {twin["name"]: canonical["name"], canonical["name"]: None}


async def test_another_canonical_replaces_the_mark_with_a_new_event(client, editor, bk):
    ns = unique("dup").lower()
    first = await make(client, editor, ns, "Payments timeout")
    second = await make(client, editor, ns, "Payments gateway timeout")
    twin = await make(client, editor, ns, "Payments slow")
    await mark(client, editor, twin["name"], first["name"])
    r = await mark(client, editor, twin["name"], second["name"])
    assert r.status_code == 200 and r.json()["duplicate_of"] == second["name"]
    events = r.json()["timeline"]
    assert [e["type"] for e in events] == ["StatusChange", "Comment", "Comment"]  # closed once
    assert second["name"] in events[-1]["message"]
    actions = [a["action"] async for a in bk.mongo.audit_log.find({"subject_id": twin["id"], **MARKS}).sort("at", 1)]
    assert actions == ["mark_duplicate", "mark_duplicate"]


async def test_no_self_and_no_chains(client, editor, bk):
    ns = unique("dup").lower()
    a = await make(client, editor, ns, "DNS outage")
    b = await make(client, editor, ns, "DNS resolution failing")
    c = await make(client, editor, ns, "Cannot resolve internal hosts")
    r = await mark(client, editor, a["name"], a["name"])
    assert r.status_code == 400 and r.json()["code"] == "DUPLICATE_OF_ITSELF"
    assert r.json()["details"] == {"field": "duplicate_of"}
    assert (await mark(client, editor, b["name"], a["name"])).status_code == 200
    # a canonical that is itself a duplicate stands for its own canonical
    r = await mark(client, editor, c["name"], b["name"])
    assert r.status_code == 200 and r.json()["duplicate_of"] == a["name"]
    assert a["name"] in r.json()["timeline"][-1]["message"]
    # A's own duplicate leads back to A: refused, nothing written
    r = await mark(client, editor, a["name"], b["name"])
    assert r.status_code == 400 and r.json()["code"] == "DUPLICATE_OF_ITSELF"
    assert (await bk.mongo.incidents.find_one({"_id": a["id"]}))["status"] == "OPEN"
    # marking A (which has duplicates) re-points them: still no chain
    d = await make(client, editor, ns, "DNS provider incident")
    assert (await mark(client, editor, a["name"], d["name"])).status_code == 200
    pointers = {x["_id"]: x.get("duplicate_of") async for x in bk.mongo.incidents.find({"namespace": ns})}
    assert pointers == {a["id"]: d["id"], b["id"]: d["id"], c["id"]: d["id"], d["id"]: None}
    # marking an already re-pointed duplicate with its (new) canonical is idempotent
    r = await mark(client, editor, b["name"], a["name"])
    assert r.status_code == 200 and r.json()["duplicate_of"] == d["name"]
    assert [e["type"] for e in r.json()["timeline"]] == ["StatusChange", "Comment"]


async def test_hidden_canonical_is_answered_like_a_missing_one(client, admin, editor, bk):
    ns = unique("dup").lower()
    secret = await make(client, admin, ns, "Key material exposure", data_classification="RESTRICTED")
    twin = await make(client, editor, ns, "Suspicious key usage")
    hidden = await mark(client, editor, twin["name"], secret["name"])  # the editor is CONFIDENTIAL
    missing_name = unique("INC-NOPE")
    missing = await mark(client, editor, twin["name"], missing_name)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {k: (v.replace(missing_name, secret["name"]) if isinstance(v, str) else v)
                             for k, v in missing.json().items()}
    assert hidden.json()["code"] == "INCIDENT_NOT_FOUND" and hidden.json()["details"] == {"field": "duplicate_of"}
    assert dict(hidden.headers).keys() == dict(missing.headers).keys()
    # a visible twin whose canonical is hidden reads like a CLOSED incident that duplicates nothing: it is
    # refused exactly like one (never a 404, which would confirm the hidden canonical exists)
    visible_twin = await make(client, admin, ns, "Key rotation emergency")
    assert (await mark(client, admin, visible_twin["name"], secret["name"])).status_code == 200
    plain_closed = await make(client, editor, ns, "Closed for good")
    r = await client.patch(f"/api/v1/incidents/{plain_closed['name']}/", headers=editor, json={"status": "CLOSED"})
    assert r.status_code == 200, r.text
    via_twin = await mark(client, editor, twin["name"], visible_twin["name"])
    closed = await mark(client, editor, twin["name"], plain_closed["name"])
    assert via_twin.status_code == closed.status_code == 409
    assert via_twin.json() == {k: (v.replace(plain_closed["name"], visible_twin["name"]) if isinstance(v, str) else v)
                               for k, v in closed.json().items()}
    assert via_twin.json()["code"] == "DUPLICATE_TARGET_CLOSED" and secret["name"] not in via_twin.text
    # GraphQL's markIncidentDuplicate is the same service: the same typed error for both
    out = {}
    for target in (visible_twin["name"], plain_closed["name"]):
        got = await gql(client, editor, MARK, n=twin["name"], d=target)
        assert "errors" not in got, got
        out[target] = got["data"]["markIncidentDuplicate"]
    renamed = {k: (v.replace(plain_closed["name"], visible_twin["name"]) if isinstance(v, str) else v)
               for k, v in out[plain_closed["name"]].items()}
    assert out[visible_twin["name"]] == renamed
    assert out[visible_twin["name"]]["__typename"] == "ConflictError"
    assert out[visible_twin["name"]]["code"] == "DUPLICATE_TARGET_CLOSED"
    assert secret["name"] not in json.dumps(out) and secret["id"] not in json.dumps(out)
    doc = await bk.mongo.incidents.find_one({"_id": twin["id"]})
    assert doc["status"] == "OPEN" and "duplicate_of" not in doc and doc["timeline"] == []
    # the incident being marked follows the usual rule: hidden is 404 like missing
    r = await mark(client, editor, secret["name"], twin["name"])
    assert r.status_code == 404 and r.json()["details"] is None
    # the visible case: for a caller who may see the canonical, the same twin stands for it (no chain)
    third = await make(client, admin, ns, "Key leak, third report")
    r = await mark(client, admin, third["name"], visible_twin["name"])
    assert r.status_code == 200 and r.json()["duplicate_of"] == secret["name"]
    assert (await bk.mongo.incidents.find_one({"_id": third["id"]}))["duplicate_of"] == secret["id"]


async def test_a_reader_who_may_not_see_the_canonical_gets_null(client, admin, viewer, bk):
    ns = unique("dup").lower()
    secret = await make(client, admin, ns, "Breach investigation", data_classification="RESTRICTED")
    twin = await make(client, admin, ns, "Odd login pattern")  # INTERNAL: the viewer sees it
    r = await mark(client, admin, twin["name"], secret["name"])
    assert r.status_code == 200 and r.json()["duplicate_of"] == secret["name"]
    # the timeline every reader of the twin sees does not name a canonical some of them may not see
    assert [e["type"] for e in r.json()["timeline"]] == ["StatusChange"]
    for path in (f"{BASE}{twin['name']}/", f"{BASE}?namespace={ns}"):
        body = (await client.get(path, headers=viewer)).text
        assert secret["name"] not in body and secret["id"] not in body
    assert (await client.get(f"{BASE}{twin['name']}/", headers=viewer)).json()["duplicate_of"] is None
    out = await gql(client, viewer, "query($n: String!) { incident(name: $n) { status duplicateOf { name } } }",
                    n=twin["name"])
    assert out["data"]["incident"] == {"status": "CLOSED", "duplicateOf": None}
    out = await gql(client, admin, "query($n: String!) { incident(name: $n) { duplicateOf { name } } }",
                    n=twin["name"])
    assert out["data"]["incident"]["duplicateOf"] == {"name": secret["name"]}


async def test_viewer_may_not_mark(client, editor, viewer, bk):
    ns = unique("dup").lower()
    a = await make(client, editor, ns, "Cache stampede")
    b = await make(client, editor, ns, "Cache miss storm")
    r = await mark(client, viewer, b["name"], a["name"])
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    out = await gql(client, viewer, """mutation($n: String!, $d: String!) { markIncidentDuplicate(name: $n,
        duplicateOf: $d) { __typename ... on UserError { code } } }""", n=b["name"], d=a["name"])
    assert out["data"]["markIncidentDuplicate"] == {"__typename": "PermissionDeniedError", "code": "PERMISSION_DENIED"}
    doc = await bk.mongo.incidents.find_one({"_id": b["id"]})
    assert doc["status"] == "OPEN" and "duplicate_of" not in doc
    r = await client.post(f"{BASE}{b['name']}/mark_duplicate/", headers=viewer, json={})
    assert r.status_code == 403  # the role is checked before the body
    r = await client.post(f"{BASE}{b['name']}/mark_duplicate/", headers=editor, json={"duplicate_of": ""})
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"
    r = await mark(client, editor, unique("INC-NOPE"), a["name"])
    assert r.status_code == 404 and r.json()["code"] == "INCIDENT_NOT_FOUND"


MARK = """mutation($n: String!, $d: String!) { markIncidentDuplicate(name: $n, duplicateOf: $d) {
  __typename
  ... on Incident { name status duplicateOf { name status } timeline { type source } }
  ... on UserError { code message field details }
} }"""


async def test_graphql_mark_and_read_through_the_loader(client, editor, admin):
    ns = unique("dup").lower()
    canonical = await make(client, editor, ns, "Object store 503s")
    twins = [await make(client, editor, ns, f"Uploads failing {i}") for i in range(3)]
    for t in twins:
        out = await gql(client, editor, MARK, n=t["name"], d=canonical["name"])
        res = out["data"]["markIncidentDuplicate"]
        assert res["__typename"] == "Incident" and res["status"] == "CLOSED"
        assert res["duplicateOf"] == {"name": canonical["name"], "status": "OPEN"}
        assert [e["type"] for e in res["timeline"]] == ["StatusChange", "Comment"]
    out = await gql(client, editor, """query($ns: String!) { incidents(namespace: $ns, ordering: "name") {
        results { name duplicateOf { name } } } }""", ns=ns)
    got = {r["name"]: (r["duplicateOf"] or {}).get("name") for r in out["data"]["incidents"]["results"]}
    assert got == {canonical["name"]: None, **{t["name"]: canonical["name"] for t in twins}}
    # typed errors: itself, missing and hidden alike
    out = await gql(client, editor, MARK, n=canonical["name"], d=canonical["name"])
    assert out["data"]["markIncidentDuplicate"]["code"] == "DUPLICATE_OF_ITSELF"
    secret = await make(client, admin, ns, "Secret twin", data_classification="RESTRICTED")
    hidden = (await gql(client, editor, MARK, n=canonical["name"], d=secret["name"]))["data"]["markIncidentDuplicate"]
    missing = (await gql(client, editor, MARK, n=canonical["name"], d="INC-MISSING-1"))["data"]["markIncidentDuplicate"]
    assert hidden["__typename"] == missing["__typename"] == "NotFoundError"
    assert hidden["field"] == missing["field"] == "duplicate_of" and hidden["code"] == missing["code"]
    assert hidden["message"].replace(secret["name"], "X") == missing["message"].replace("INC-MISSING-1", "X")


async def test_reopening_undoes_the_mark(client, editor, bk):
    ns = unique("dup").lower()
    canonical = await make(client, editor, ns, "Queue backlog")
    twin = await make(client, editor, ns, "Queue lag")
    await mark(client, editor, twin["name"], canonical["name"])
    # a PATCH that keeps it CLOSED keeps the mark
    r = await client.patch(f"{BASE}{twin['name']}/", headers=editor, json={"title": "Queue lag (dup)"})
    assert r.json()["duplicate_of"] == canonical["name"]
    r = await client.patch(f"{BASE}{twin['name']}/", headers=editor, json={"status": "INVESTIGATING"})
    assert r.status_code == 200
    out = r.json()
    assert out["status"] == "INVESTIGATING" and out["duplicate_of"] is None and out["resolved_at"] is None
    assert [e["type"] for e in out["timeline"]] == ["StatusChange", "Comment", "StatusChange", "Comment"]
    assert out["timeline"][-1]["message"].startswith(f"No longer a duplicate of {canonical['name']}")
    assert "duplicate_of" not in await bk.mongo.incidents.find_one({"_id": twin["id"]})
    actions = [a["action"] async for a in bk.mongo.audit_log.find({"subject_id": twin["id"], **MARKS}).sort("at", 1)]
    assert actions == ["mark_duplicate", "unmark_duplicate"]
    # and it can be marked again
    r = await mark(client, editor, twin["name"], canonical["name"])
    assert r.json()["duplicate_of"] == canonical["name"] and r.json()["status"] == "CLOSED"
    # GraphQL's updateIncident is the same service
    out = await gql(client, editor, """mutation($n: String!) { updateIncident(name: $n, input: {status: RESOLVED}) {
        ... on Incident { status duplicateOf { name } } } }""", n=twin["name"])
    assert out["data"]["updateIncident"] == {"status": "RESOLVED", "duplicateOf": None}


async def test_similar_leaves_out_twins_and_the_canonical(client, admin, editor, viewer):
    ns = unique("dup").lower()
    body = {"root_cause": WORDS, "description": WORDS, "affected_services": ["etcd"], "category": "Platform"}
    query = await make(client, editor, ns, f"Control plane unstable: {WORDS}", **body)
    canonical = await make(client, editor, ns, f"etcd flapping: {WORDS}", **body)
    twin = await make(client, editor, ns, f"etcd elections: {WORDS}", **body)
    other = await make(client, editor, ns, f"Kubernetes API errors: {WORDS}", **body)
    everyone = {canonical["name"], twin["name"], other["name"]}

    async def similar_names(name, headers=viewer):
        r = await client.get(f"{BASE}{name}/similar/", headers=headers, params={"limit": 10})
        assert r.status_code == 200, r.text
        return [h["name"] for h in r.json()["results"]]

    async def all_indexed():
        return set(await similar_names(query["name"])) >= everyone
    await eventually(all_indexed)
    assert (await mark(client, editor, twin["name"], canonical["name"])).status_code == 200

    names = await similar_names(query["name"])
    assert twin["name"] not in names and {canonical["name"], other["name"]} <= set(names)
    hits = (await client.get(f"{BASE}{query['name']}/similar/", headers=viewer)).json()["results"]
    assert hits[0]["matching_factors"][0]["factor"] == "text"
    assert max(f["value"] for h in hits for f in h["matching_factors"] if f["factor"] == "text") == 1.0
    assert all(h["duplicate_of"] is None for h in hits)
    # from the twin: its canonical is the same outage, not a "similar past incident"
    names = await similar_names(twin["name"])
    assert canonical["name"] not in names and twin["name"] not in names and other["name"] in names
    # from the canonical: its duplicate is not offered either
    names = await similar_names(canonical["name"])
    assert twin["name"] not in names and other["name"] in names
    out = await gql(client, viewer, "query($id: ID!) { similarIncidents(incidentId: $id, limit: 10) { incident { name } } }",
                    id=twin["id"])
    assert canonical["name"] not in {s["incident"]["name"] for s in out["data"]["similarIncidents"]}
    # once reopened, the twin is a candidate again
    await client.patch(f"{BASE}{twin['name']}/", headers=editor, json={"status": "OPEN"})
    assert twin["name"] in await similar_names(query["name"])


def test_the_demo_records_its_twins_as_duplicates():
    for rows in (demo.BUILT_IN, *([demo.load_rows()] if demo.DATASET.exists() else [])):
        data = demo.build(rows)
        order = {i.name: n for n, i in enumerate(data.incidents)}
        status = {i.name: i.status.value for i in data.incidents}
        closed_as_duplicate = {i.name for i in data.incidents
                               if any(e.message.startswith("Duplicate of ") for e in i.timeline)}
        assert set(data.duplicates) == closed_as_duplicate and data.duplicates
        for twin, canonical in data.duplicates.items():
            assert status[twin] == "CLOSED" and canonical not in data.duplicates  # no chains
            assert order[canonical] < order[twin]  # created first, so seeding can point at it


async def test_the_demo_seed_sets_duplicate_of(stack):
    """Seeded through the service on a database of its own, as `ikl seed_demo` seeds."""
    from tests.test_demo import demo_api

    async with demo_api(demo.BUILT_IN) as (bk, client, importer, counts):
        by_id = {d["_id"]: d async for d in bk.mongo.incidents.find({}, {"name": 1, "duplicate_of": 1})}
        got = {d["name"]: by_id[d["duplicate_of"]]["name"] for d in by_id.values() if d.get("duplicate_of")}
        assert got == demo.build(demo.BUILT_IN).duplicates
        twin, canonical = next(iter(got.items()))
        r = await client.get(f"{BASE}{twin}/", headers=await _token(bk, "demo-oncall"))
        assert r.json()["duplicate_of"] == canonical


async def _token(bk, username: str) -> dict[str, str]:
    from tests.test_demo import token_for

    return await token_for(bk, username)
