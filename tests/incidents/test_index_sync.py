"""Writes accepted by MongoDB reach the search index: through the worker, through the sweep, and
after the search server was down. Reindex swaps the alias without a gap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from opensearchpy import NotFoundError

from app.timefmt import utcnow
from indexers import incidents as incidents_index
from indexers.base import alias_targets, building, reindex, write_docs
from tests.conftest import eventually, unique

BASE = "/api/v1/incidents/"


async def indexed(bk, incident_id: str) -> bool:
    alias = bk.index_alias("incidents")
    try:
        await bk.search.indices.refresh(index=alias)
        return await bk.search.exists(index=alias, id=incident_id)
    except NotFoundError:  # the alias is not there (yet)
        return False


async def test_api_write_is_indexed(client, editor, bk, worker):
    r = await client.post(BASE, headers=editor, json={"title": unique("worker-indexed"), "root_cause": "cert expiry"})
    assert r.status_code == 201
    inc = r.json()
    await eventually(lambda: indexed(bk, inc["id"]))

    async def entry_gone():  # removed right after the sync that indexed it
        return not await bk.mongo.outbox.count_documents({"doc_id": inc["id"], "index": "incidents"})
    await eventually(entry_gone)

    async def embedded():  # the follow-up job: the worker embeds what was written
        doc = await bk.mongo.incidents.find_one({"_id": inc["id"]}, {"embedding": 1, "embedding_model": 1})
        return doc.get("embedding") and not await bk.mongo.outbox.count_documents({"doc_id": inc["id"]})
    await eventually(embedded, timeout=30)


async def test_worker_alone_drains_outbox(stack, bk, worker):
    """An entry the sweep will not touch yet is synced by the worker process when asked to."""
    from app.indexing import outbox
    from app.worker import sync_document

    doc_id = unique("direct")
    await bk.mongo.incidents.insert_one({"_id": doc_id, "name": doc_id, "title": "direct job", "namespace": "default",
                                         "severity": "LOW", "status": "OPEN"})
    await outbox.record(bk, "incidents", doc_id)
    # Out of the sweep's reach for a minute: only the worker, asked for this document, syncs it.
    await bk.mongo.outbox.update_one({"doc_id": doc_id}, {"$set": {"next_attempt_at": utcnow() + timedelta(minutes=1)}})
    await asyncio.to_thread(sync_document.send, "incidents", doc_id)
    await eventually(lambda: indexed(bk, doc_id))


async def test_write_while_search_is_down_is_indexed_after_it_returns(client, editor, bk, stack):
    stack.stop_one("osmem")
    try:
        title = unique("outage")
        r = await client.post(BASE, headers=editor, json={"title": title, "description": "written during outage"})
        assert r.status_code == 201, r.text  # MongoDB accepted it; search being down does not fail the write
        inc = r.json()

        async def failed_once():
            e = await bk.mongo.outbox.find_one({"doc_id": inc["id"], "index": "incidents"})
            return e and e.get("attempts", 0) >= 1 and e.get("last_error")
        await eventually(failed_once)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "opensearch" in ready.json()["error"]
        assert ready.json()["details"]["mongodb"] == "ok" and ready.json()["details"]["opensearch"].startswith("down")
        # reads that need the search server say so, in the error format
        similar = await client.get(f"{BASE}{inc['name']}/similar/", headers=editor)
        assert similar.status_code == 503 and similar.json()["code"] == "SEARCH_UNAVAILABLE"
        gql = await client.post("/graphql", headers=editor, json={
            "query": "query($id: ID!) { similarIncidents(incidentId: $id) { score } }", "variables": {"id": inc["id"]}})
        assert gql.json()["errors"][0]["extensions"]["code"] == "SEARCH_UNAVAILABLE"
    finally:
        stack.start_search()  # comes back empty: the index must be rebuilt from MongoDB
    await eventually(lambda: indexed(bk, inc["id"]), timeout=20)
    assert await alias_targets(bk, incidents_index.INDEX)

    async def entry_gone():
        return not await bk.mongo.outbox.count_documents({"doc_id": inc["id"], "index": "incidents"})
    await eventually(entry_gone)


async def test_reindex_swaps_alias_and_keeps_documents(client, editor, bk):
    r = await client.post(BASE, headers=editor, json={"title": unique("reindexed")})
    inc = r.json()
    await eventually(lambda: indexed(bk, inc["id"]))
    before = await alias_targets(bk, incidents_index.INDEX)
    stats = await reindex(bk, incidents_index.INDEX)
    after = await alias_targets(bk, incidents_index.INDEX)
    assert after == [stats["index"]] and after != before
    assert stats["documents"] == await bk.mongo.incidents.count_documents({})
    assert await indexed(bk, inc["id"])
    for old in before:
        assert not await bk.search.indices.exists(index=old)


async def test_similar_incidents_ranks_the_closest_first(client, editor, viewer, bk):
    ns = unique("sim").lower()
    bodies = [
        {"title": "Postgres connection pool exhausted", "root_cause": "connection pool too small for peak traffic",
         "affected_services": ["orders-db"], "category": "Database"},
        {"title": "Connection pool exhaustion on orders database", "root_cause": "pool size too small at peak",
         "affected_services": ["orders-db"], "category": "Database"},
        {"title": "TLS certificate expired on edge", "root_cause": "certificate renewal cron failed",
         "affected_services": ["edge"], "category": "Security"},
    ]
    made = []
    for b in bodies:
        r = await client.post(BASE, headers=editor, json={"namespace": ns, **b})
        made.append(r.json())
    for m in made:
        await eventually(lambda m=m: indexed(bk, m["id"]))
    r = await client.get(f"{BASE}{made[0]['name']}/similar/", headers=viewer, params={"limit": 5})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["name"] == made[1]["name"] and 0.5 < results[0]["score"] <= 1.0
    factors = {f["factor"] for f in results[0]["matching_factors"]}
    assert {"text", "services", "category"} <= factors
    assert made[0]["name"] not in [x["name"] for x in results]
    scores = [x["score"] for x in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


async def test_worker_sweeps_the_outbox_on_its_own(stack):
    """With no API process for its database, a worker still drains entries nobody asked it about."""
    import os
    import subprocess
    import sys

    from app.backends import connect
    from app.main import prepare
    from app.settings import Settings
    from tests.conftest import ROOT

    settings = Settings(mongodb_db="ikl_worker_only", index_prefix="workeronly")
    bk = connect(settings)
    await prepare(bk)
    await bk.mongo.incidents.insert_one({"_id": "w1", "name": "w1", "title": "swept", "namespace": "default",
                                         "severity": "LOW", "status": "OPEN"})
    from app.indexing import outbox

    await outbox.record(bk, "incidents", "w1")  # no actor message: only a sweep can sync it
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IKL_MONGODB_DB": "ikl_worker_only",
           "IKL_INDEX_PREFIX": "workeronly", "IKL_OUTBOX_SWEEP_INTERVAL": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "dramatiq", "app.worker", "--processes", "1", "--threads", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def swept():
            if await bk.mongo.outbox.count_documents({}):
                return False
            await bk.search.indices.refresh(index="workeronly-incidents")
            return await bk.search.exists(index="workeronly-incidents", id="w1")
        await eventually(swept, timeout=20)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        await bk.client.drop_database("ikl_worker_only")
        await bk.close()


async def test_changes_during_a_reindex_reach_the_new_index(client, editor, bk):
    """While a build is registered, index sync writes to it too: deletes included."""
    from app.indexing import outbox

    kept = (await client.post(BASE, headers=editor, json={"title": unique("kept")})).json()
    gone = (await client.post(BASE, headers=editor, json={"title": unique("gone")})).json()
    await outbox.flush(bk, index="incidents")
    target = bk.index_alias("incidents") + "-vtest-build"
    await bk.search.indices.create(index=target, body=incidents_index.INDEX.body())
    # the copy has already passed both documents
    docs = await bk.mongo.incidents.find({"_id": {"$in": [kept["id"], gone["id"]]}}).to_list(None)
    await write_docs(bk, incidents_index.INDEX, docs, target=target)
    await bk.mongo.index_builds.insert_one({"_id": target, "index": "incidents", "started_at": utcnow()})
    try:
        assert await building(bk, incidents_index.INDEX) == [target]
        await client.patch(f"{BASE}{kept['name']}/", headers=editor, json={"title": "renamed during build"})
        # incidents have no delete route yet: delete as a service would, document and outbox entry
        await bk.mongo.incidents.delete_one({"_id": gone["id"]})
        await outbox.record(bk, "incidents", gone["id"])
        await outbox.flush(bk, index="incidents")
        await bk.search.indices.refresh(index=target)
        assert not await bk.search.exists(index=target, id=gone["id"])
        assert (await bk.search.get(index=target, id=kept["id"]))["_source"]["title"] == "renamed during build"
    finally:
        await bk.mongo.index_builds.delete_one({"_id": target})
        await bk.search.indices.delete(index=target, ignore_unavailable=True)
