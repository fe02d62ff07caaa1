"""The near-duplicate promise on a corpus the size of the demo, written the way an SRE writes it: 120
filler incidents of varied text in one namespace (some resolved, some of their recommendations rated),
then a resolved near-duplicate written a moment before the new incident. Right after the writes the
search index does not have it yet (the outbox sync and the engine's refresh lag behind MongoDB) and the
embedding job has not run: the recommendation must not wait on either (app/incidents/similarity.py
`not_yet_searchable`)."""

from __future__ import annotations

import itertools
import uuid

import pytest

from tests.recommendations.test_rest import BASE, INCIDENTS, sync

SERVICES = ["checkout-api", "payments-gateway", "orders-db", "search", "auth", "cdn", "queue", "billing",
            "inventory", "notifications", "kafka", "redis-cache"]
SYMPTOMS = ["latency above the SLO", "pods crash-looping after a deploy", "disk full on the primary",
            "connection pool exhausted", "DNS resolution failures", "memory leak and OOM kills",
            "5xx spike behind the load balancer", "replication lag growing", "certificate rotation warnings",
            "rate limiting rejecting partner traffic", "stale cache entries served", "consumer lag on the topic"]
CAUSES = [("A config push set the pool size to 5.", "Rolled back the config and raised the pool size."),
          ("Log rotation was disabled on the new image.", "Re-enabled log rotation and freed the disk."),
          ("A slow query without an index after a migration.", "Added the missing index."),
          ("A bad deploy shipped a memory leak.", "Rolled back the deploy."),
          ("The upstream DNS resolver was overloaded.", "Switched to the secondary resolver.")]
A = {"title": "Checkout API returns 502 after the payments gateway TLS certificate expired",
     "severity": "HIGH", "affected_services": ["checkout-api", "payments-gateway"],
     "description": "Customers could not pay: every call from checkout to the payments gateway failed the TLS handshake."}
A_FIX = {"root_cause": "The gateway's TLS certificate expired; renewal was manual.",
         "resolution": "Renewed the certificate and moved it to automatic renewal."}
B = {"title": "Payments failing from checkout: certificate on the payment gateway has expired",
     "severity": "HIGH", "affected_services": ["checkout-api", "payments-gateway"],
     "description": "Checkout cannot reach the payment gateway, TLS handshake errors since midnight."}


@pytest.fixture(scope="module")
async def corpus(client, bk, admin):
    ns = f"apps{uuid.uuid4().hex[:6]}"
    fillers = []
    combos = itertools.product(range(len(SYMPTOMS)), range(len(SERVICES)))
    for i, (s, v) in enumerate(itertools.islice(combos, 0, None, 1)):
        if i >= 120:
            break
        services = [SERVICES[v], SERVICES[(v + s + 1) % len(SERVICES)]]
        r = await client.post(INCIDENTS, headers=admin, json={
            "namespace": ns, "severity": ("HIGH", "MEDIUM", "CRITICAL", "LOW")[i % 4], "affected_services": services,
            "title": f"{services[0]} {SYMPTOMS[s]} ({i})",
            "description": f"{services[0]} and {services[1]}: {SYMPTOMS[s]}; alerts fired for {services[1]}."})
        assert r.status_code == 201, r.text
        doc = r.json()
        if i % 3 == 0:
            cause, fix = CAUSES[i % len(CAUSES)]
            r = await client.post(f"{INCIDENTS}{doc['name']}/resolve/", headers=admin,
                                  json={"root_cause": cause, "resolution": fix})
            assert r.status_code == 200, r.text
        fillers.append(doc)
    from app.indexing import outbox

    await outbox.flush(bk, index="embeddings", jobs=True, timeout=120)  # the demo's incidents are embedded
    await sync(bk)
    # responders rated what they were offered on some of them (most of it did not help)
    for j, doc in enumerate(fillers[1:40:3]):
        r = await client.post(BASE + "generate_for_incident/", headers=admin, json={
            "incident_id": doc["id"], "recommendation_types": ["SIMILAR_INCIDENT", "SOLUTION"],
            "max_recommendations": 5, "min_confidence": 0.0})
        assert r.status_code == 200, r.text
        for k, rec in enumerate(r.json()["recommendations"]):
            await client.post(f"{BASE}{rec['id']}/rate_effectiveness/", headers=admin,
                              json={"rating": 5 if (j + k) % 4 == 0 else 1})
    return {"ns": ns, "fillers": fillers}


async def _written_just_now(client, bk, admin, ns):
    """A resolved, then B: as the acceptance check writes them, then the lag made certain — A is not in
    the search index and has no vector yet (the outbox sync and the embedding job have not run)."""
    from indexers import incidents as incidents_index

    alias = bk.index_alias(incidents_index.INDEX.name)
    for old in await bk.mongo.incidents.find({"namespace": ns, "title": {"$in": [A["title"], B["title"]]}}).to_list(None):
        await bk.mongo.incidents.delete_one({"_id": old["_id"]})  # an earlier test's pair: twins of this one
        await bk.search.delete(index=alias, id=old["_id"], ignore=[404])
    a = (await client.post(INCIDENTS, headers=admin, json={"namespace": ns, **A})).json()
    r = await client.post(f"{INCIDENTS}{a['name']}/resolve/", headers=admin, json=A_FIX)
    assert r.status_code == 200, r.text
    b = (await client.post(INCIDENTS, headers=admin, json={"namespace": ns, **B})).json()
    await bk.search.delete(index=alias, id=a["id"], ignore=[404])
    await bk.search.indices.refresh(index=alias)
    await bk.mongo.incidents.update_many({"_id": {"$in": [a["id"], b["id"]]}},
                                         {"$unset": {"embedding": "", "embedding_hash": "", "embedding_model": ""}})
    return a, b


async def test_a_resolved_near_duplicate_written_a_moment_ago_is_the_top_similar_incident(client, bk, admin, corpus):
    a, b = await _written_just_now(client, bk, admin, corpus["ns"])
    r = await client.post(BASE + "generate_for_incident/", headers=admin, json={
        "incident_id": b["id"], "recommendation_types": ["SIMILAR_INCIDENT", "SOLUTION"], "max_recommendations": 5,
        "min_confidence": 0.6})
    assert r.status_code == 200, r.text
    recs = r.json()["recommendations"]
    top = [x for x in recs if x["type"] == "SIMILAR_INCIDENT"][:1]
    assert top, recs
    d = (await client.get(f"{BASE}{top[0]['id']}/", headers=admin)).json()
    assert d["related_incident"] == a["id"], [x["title"] for x in recs]
    assert d["confidence_score"] >= 0.85, d
    assert any(f["factor"] == "semantic" for f in d["matching_factors"])  # embedded on the spot
    assert any(x["type"] == "SOLUTION" and a["name"] in x["title"] for x in recs), recs


async def test_once_searchable_the_same_incident_ranks_first_from_the_engine(client, bk, admin, corpus):
    from app.incidents import similarity

    a, b = await _written_just_now(client, bk, admin, corpus["ns"])
    await bk.mongo.outbox.delete_many({"doc_id": {"$in": [a["id"], b["id"]]}})
    await bk.mongo.incidents.update_one({"_id": a["id"]}, {"$unset": {"embedding": ""}})
    await sync_one(bk, a["id"])
    doc = await bk.mongo.incidents.find_one({"_id": b["id"]})
    user = await _admin_user(bk)
    matches = await similarity.similar(bk, doc, user=user, limit=5, namespace=corpus["ns"])
    assert matches and matches[0].doc["_id"] == a["id"], [m.doc.get("title") for m in matches]
    assert matches[0].factors[0]["detail"] == "words in common"  # scored by the engine, not the stand-in


async def sync_one(bk, doc_id):
    from app.indexing import outbox
    from indexers import incidents as incidents_index

    await outbox.record(bk, incidents_index.INDEX.name, doc_id)
    await outbox.flush(bk, index=incidents_index.INDEX.name)
    await bk.search.indices.refresh(index=bk.index_alias(incidents_index.INDEX.name))


async def _admin_user(bk):
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user

    return await create_user(bk, data=UserCreate(username=f"sim-{uuid.uuid4().hex[:6]}", role=Role.ADMIN,
                                                 clearance=Classification.RESTRICTED))
