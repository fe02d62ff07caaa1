"""app.vectors: exact top-k against brute force, filters, ties, upsert/remove, freshness from a real
MongoDB collection, the registry, and the k-NN capability probe (osmem, and a tiny fake server)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from bson import Binary

from app.users.models import Classification
from app.vectors import (REQUIRED_INDEXES, VectorIndex, changes_filter, clear_knn_cache, clear_registry, get_index,
                         knn_query, knn_supported)

DIM = 384
CLASSES = [c.value for c in Classification]
NAMESPACES = ["payments", "search", "core", None]
STATUSES = ["OPEN", "INVESTIGATING", "RESOLVED", "CLOSED"]
CATEGORIES = ["network", "database", "deploy"]


def to_bytes(vector) -> bytes:
    """As stored in MongoDB: float32 little-endian."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def brute(vecs, meta, ids, q, k, *, max_rank, namespace=None, exclude_ids=(), statuses=None, categories=None):
    scores = vecs.astype(np.float64) @ q.astype(np.float64)
    out = []
    for i, doc_id in enumerate(ids):
        m = meta[doc_id]
        if Classification(m["classification"]).rank > max_rank:
            continue
        if namespace is not None and m["namespace"] != namespace:
            continue
        if statuses is not None and m["status"] not in statuses:
            continue
        if categories is not None and m["category"] not in categories:
            continue
        if doc_id in exclude_ids:
            continue
        out.append((-scores[i], doc_id))
    out.sort()
    return [(doc_id, -s) for s, doc_id in out[:k]]


def build(rng, n, capacity=16):
    vecs = unit(rng, n)
    ids = [str(uuid.UUID(int=int(rng.integers(0, 2**63)))) for _ in range(n)]
    meta = {}
    idx = VectorIndex(capacity=capacity)
    for i, doc_id in enumerate(ids):
        m = {"classification": CLASSES[rng.integers(4)], "namespace": NAMESPACES[rng.integers(4)],
             "status": STATUSES[rng.integers(4)], "category": CATEGORIES[rng.integers(3)]}
        meta[doc_id] = m
        idx.upsert(doc_id, vecs[i], **m)
    return idx, vecs, ids, meta


@pytest.mark.parametrize("n", [1000, 10000])
def test_top_k_matches_brute_force_with_every_filter(n):
    rng = np.random.default_rng(n)
    idx, vecs, ids, meta = build(rng, n)
    assert len(idx) == n and idx.capacity >= n
    queries = unit(rng, 4)
    filters = [
        {"max_rank": 3},
        {"max_rank": 1},
        {"max_rank": 0, "namespace": "payments"},
        {"max_rank": 2, "namespace": "search", "statuses": ["RESOLVED", "CLOSED"]},
        {"max_rank": 3, "statuses": ["OPEN"]},
        {"max_rank": 3, "categories": ["deploy"], "statuses": ["OPEN", "RESOLVED"]},
        {"max_rank": 1, "exclude_ids": set(ids[:: 7])},
        {"max_rank": 3, "namespace": "core", "statuses": ["INVESTIGATING"], "categories": ["network", "database"],
         "exclude_ids": ids[:500]},
    ]
    for q in queries:
        for f in filters:
            for k in (1, 10, 50):
                got = idx.search(q, k, **f)
                want = brute(vecs, meta, ids, q, k, **f)
                assert [g[0] for g in got] == [w[0] for w in want], f
                assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=1e-5)
    # the query itself is found first with score 1
    assert idx.search(vecs[3], 1, max_rank=3)[0][0] == ids[3]
    assert idx.search(vecs[3], 1, max_rank=3)[0][1] == pytest.approx(1.0, abs=1e-5)
    # nothing matches: unknown namespace or status, k = 0
    assert idx.search(queries[0], 10, max_rank=3, namespace="nope") == []
    assert idx.search(queries[0], 10, max_rank=3, statuses=["NOPE"]) == []
    assert idx.search(queries[0], 0, max_rank=3) == []
    # k larger than the candidates: all of them, ordered
    few = idx.search(queries[0], 10_000_000, max_rank=0, namespace="payments", statuses=["OPEN"])
    assert len(few) == sum(1 for m in meta.values() if m["classification"] == "PUBLIC"
                           and m["namespace"] == "payments" and m["status"] == "OPEN")
    assert [s for _, s in few] == sorted((s for _, s in few), reverse=True)


def test_ties_are_broken_by_id_whatever_the_insertion_order():
    rng = np.random.default_rng(1)
    base = unit(rng, 3)
    noise = unit(rng, 200)
    # 30 rows share each of three vectors: many exact ties, also across the top-k boundary
    tied = [(f"id-{i:03d}", base[i % 3]) for i in range(90)]
    others = [(f"x-{i:03d}", v) for i, v in enumerate(noise)]
    results = []
    for order in range(4):
        rows = tied + others
        np.random.default_rng(order).shuffle(rows) if order else None
        idx = VectorIndex(capacity=8)
        for doc_id, v in rows:
            idx.upsert(doc_id, v)
        if order == 3:  # holes and reused slots change the physical rows too
            for doc_id, v in rows[:40]:
                idx.remove(doc_id)
            for doc_id, v in reversed(rows[:40]):
                idx.upsert(doc_id, v)
        results.append([idx.search(base[0], k, max_rank=3) for k in (1, 5, 30, 45)])
    assert all(r == results[0] for r in results)
    top30 = results[0][2]
    assert [d for d, _ in top30] == [f"id-{i:03d}" for i in range(0, 90, 3)]
    assert [d for d, _ in results[0][1]] == ["id-000", "id-003", "id-006", "id-009", "id-012"]


def test_upsert_replaces_and_remove_frees_the_row():
    rng = np.random.default_rng(2)
    v = unit(rng, 5)
    idx = VectorIndex(capacity=2)
    for i in range(5):
        idx.upsert(f"d{i}", v[i] * 3.0, classification="PUBLIC", namespace="a", status="OPEN")  # normalised on add
    assert idx.capacity == 8 and len(idx) == 5
    assert np.linalg.norm(idx.vector("d0")) == pytest.approx(1.0, abs=1e-6)
    assert idx.search(v[1], 1, max_rank=0)[0][0] == "d1"
    # replace d1's vector and metadata: same row, new answers
    idx.upsert("d1", v[4], classification="CONFIDENTIAL", namespace="b", status="CLOSED")
    assert len(idx) == 5
    assert "d1" not in [d for d, _ in idx.search(v[4], 5, max_rank=1)]
    assert [d for d, _ in idx.search(v[4], 2, max_rank=2, namespace="b")] == ["d1"]
    assert idx.search(v[1], 5, max_rank=3, statuses=["OPEN"])[0][0] != "d1"
    # remove: gone, and its slot is reused without growth
    assert idx.remove("d1") and not idx.remove("d1") and "d1" not in idx
    assert all(d != "d1" for d, _ in idx.search(v[4], 10, max_rank=3))
    n_rows = idx._n
    idx.upsert("d9", v[2])
    assert idx._n == n_rows and len(idx) == 5
    with pytest.raises(ValueError):
        idx.upsert("bad", np.zeros(DIM))
    with pytest.raises(ValueError):
        idx.upsert("bad", np.ones(10))
    assert "bad" not in idx


def test_a_restricted_row_is_never_returned_below_its_rank():
    rng = np.random.default_rng(3)
    v = unit(rng, 50)
    idx = VectorIndex()
    for i in range(50):
        idx.upsert(f"d{i:02d}", v[i], classification="INTERNAL")
    idx.upsert("secret", v[0], classification="RESTRICTED")
    idx.upsert("confidential", v[0], classification="CONFIDENTIAL")
    idx.upsert("unknown", v[0], classification="TOP-SECRET")   # unknown values rank highest
    idx.upsert("default", v[1])                                # no classification: INTERNAL
    internal = Classification.INTERNAL.rank
    for k in (1, 10, 1000):
        got = [d for d, _ in idx.search(v[0], k, max_rank=internal)]
        assert not {"secret", "confidential", "unknown"} & set(got)
    assert len(idx.search(v[0], 1000, max_rank=internal)) == 51
    assert [d for d, _ in idx.search(v[0], 3, max_rank=Classification.RESTRICTED.rank)] == \
        ["confidential", "d00", "secret"]
    assert "default" in [d for d, _ in idx.search(v[1], 2, max_rank=internal)]
    assert idx.search(v[1], 5, max_rank=Classification.PUBLIC.rank) == []


# --- MongoDB ------------------------------------------------------------------------------------

def now() -> datetime:
    return datetime.now(timezone.utc)


def incident(rng, i, **extra):
    past = now() - timedelta(days=3)
    doc = {"_id": str(uuid.uuid4()), "name": f"INC-{i}", "data_classification": CLASSES[i % 4],
           "namespace": NAMESPACES[i % 3], "status": STATUSES[i % 4], "category": CATEGORIES[i % 3],
           "severity": "SEV2", "affected_services": ["api"], "created_at": past, "updated_at": past}
    doc.update({"embedding": Binary(to_bytes(unit(rng, 1)[0])), "embedding_model": "all-MiniLM-L6-v2",
                "embedded_at": past})
    doc.update(extra)
    return doc


async def new_collection(bk):
    coll = bk.mongo[f"vectors_{uuid.uuid4().hex[:8]}"]
    await coll.create_indexes(REQUIRED_INDEXES)
    return coll


def vec(doc) -> np.ndarray:
    return np.frombuffer(bytes(doc["embedding"]), dtype="<f4")


async def test_refresh_follows_changes_in_mongodb(bk):
    rng = np.random.default_rng(4)
    coll = await new_collection(bk)
    docs = [incident(rng, i) for i in range(60)]
    docs.append(incident(rng, 60, embedding=None, embedded_at=None))       # not embedded yet
    no_emb = incident(rng, 61)
    for f in ("embedding", "embedding_model", "embedded_at"):
        no_emb.pop(f)
    docs.append(no_emb)
    docs.append(incident(rng, 62, embedding_model="other-model"))          # another model's vector
    await coll.insert_many(docs)
    idx = VectorIndex(coll.name, model="all-MiniLM-L6-v2", reconcile_every=3, full_every=0)

    stats = await idx.refresh(bk)
    assert stats["kind"] == "full" and len(idx) == 60 and stats["queries"] == 1
    target = docs[5]
    assert target["data_classification"] == "INTERNAL"
    assert idx.search(vec(target), 1, max_rank=1)[0][0] == target["_id"]

    # a reclassification (updated_at moves): RESTRICTED is hidden from INTERNAL
    await coll.update_one({"_id": target["_id"]}, {"$set": {"data_classification": "RESTRICTED", "updated_at": now()}})
    # a new embedding written by the worker (embedded_at moves, updated_at does not)
    moved, new_v = docs[6], unit(rng, 1)[0]
    await coll.update_one({"_id": moved["_id"]}, {"$set": {"embedding": Binary(to_bytes(new_v)), "embedded_at": now()}})
    # the pending one gets its embedding
    pending_v = unit(rng, 1)[0]
    await coll.update_one({"_id": docs[60]["_id"]}, {"$set": {"embedding": Binary(to_bytes(pending_v)),
                                                               "embedded_at": now()}})
    stats = await idx.refresh(bk)
    assert stats["kind"] == "incremental" and stats["queries"] == 1 and stats["upserted"] >= 3
    assert len(idx) == 61
    assert target["_id"] not in [d for d, _ in idx.search(vec(target), 61, max_rank=1)]
    assert idx.search(vec(target), 1, max_rank=3)[0] == (target["_id"], pytest.approx(1.0, abs=1e-5))
    assert idx.search(new_v, 1, max_rank=3)[0][0] == moved["_id"]
    assert np.allclose(idx.vector(moved["_id"]), new_v)
    assert idx.search(pending_v, 1, max_rank=3)[0][0] == docs[60]["_id"]

    # an embedding removed (text changed, to be re-embedded) and one re-embedded with another model
    await coll.update_one({"_id": docs[7]["_id"]}, {"$unset": {"embedding": "", "embedded_at": ""},
                                                    "$set": {"updated_at": now()}})
    await coll.update_one({"_id": docs[8]["_id"]}, {"$set": {"embedding_model": "other-model", "embedded_at": now()}})
    # and an admin deletes one: seen by the reconciliation on the third refresh
    await coll.delete_one({"_id": docs[9]["_id"]})
    stats = await idx.refresh(bk)
    assert idx.refreshes == 3 and stats["queries"] == 2 and stats["removed"] == 3
    assert {docs[7]["_id"], docs[8]["_id"], docs[9]["_id"]}.isdisjoint(idx.ids()) and len(idx) == 58

    # another model: a full reload holding that model's vectors only
    idx.set_model("other-model")
    stats = await idx.refresh(bk)
    assert stats["kind"] == "full" and sorted(idx.ids()) == sorted([docs[8]["_id"], docs[62]["_id"]])
    await coll.drop()


async def test_a_full_load_reads_the_embedded_documents_only(bk):
    """Documents not embedded yet (an import, a backfill) are not scanned: at a million of them the full load's
    scan ran past the API's deadline and the index never loaded."""
    rng = np.random.default_rng(6)
    coll = await new_collection(bk)
    embedded = [incident(rng, i) for i in range(20)]
    pending = [incident(rng, 100 + i) for i in range(400)]
    for doc in pending:
        for f in ("embedding", "embedding_model", "embedded_at"):
            doc.pop(f)
    await coll.insert_many(embedded + pending)
    idx = VectorIndex(coll.name, model="all-MiniLM-L6-v2", reconcile_every=0, full_every=0)
    ns = f"{bk.mongo.name}.{coll.name}"
    await bk.mongo.command("profile", 2, filter={"ns": ns})
    try:
        stats = await idx.refresh(bk)
    finally:
        await bk.mongo.command("profile", 0)
    ops = [p async for p in bk.mongo["system.profile"].find({"ns": ns})]
    await bk.mongo["system.profile"].drop()
    assert stats["kind"] == "full" and sorted(idx.ids()) == sorted(d["_id"] for d in embedded)
    assert ops and all("IXSCAN { embedded_at: 1, _id: 1 }" in p.get("planSummary", "") for p in ops), ops
    assert sum(p["docsExamined"] for p in ops) == len(embedded), ops
    await coll.drop()


async def test_a_refresh_without_changes_is_one_indexed_query(bk):
    rng = np.random.default_rng(5)
    coll = await new_collection(bk)
    await coll.insert_many([incident(rng, i) for i in range(300)])
    idx = VectorIndex(coll.name, lag_seconds=0, reconcile_every=0, full_every=0)
    await idx.refresh(bk)
    assert len(idx) == 300

    ns = f"{bk.mongo.name}.{coll.name}"
    await bk.mongo.command("profile", 2, filter={"ns": ns})
    try:
        before = idx.queries
        stats = await idx.refresh(bk)
        stats2 = await idx.refresh(bk)
    finally:
        await bk.mongo.command("profile", 0)
    ops = [p async for p in bk.mongo["system.profile"].find({"ns": ns})]
    await bk.mongo["system.profile"].drop()
    assert [p["op"] for p in ops] == ["query", "query"], ops
    assert all(p["nreturned"] == 0 for p in ops)
    assert idx.queries - before == 2 and stats["upserted"] == stats2["upserted"] == 0
    # both branches of the $or use their index
    plan = json.dumps((await coll.find(changes_filter(now())).explain())["queryPlanner"]["winningPlan"])
    assert "COLLSCAN" not in plan and plan.count("IXSCAN") == 2, plan
    for p in ops:
        assert "COLLSCAN" not in p.get("planSummary", ""), p
    await coll.drop()


async def test_get_index_is_one_per_collection_and_refreshes_once(bk):
    clear_registry()
    rng = np.random.default_rng(6)
    coll = await new_collection(bk)
    await coll.insert_many([incident(rng, i) for i in range(20)])
    got = await asyncio.gather(*[get_index(bk, coll.name, refresh_seconds=60) for _ in range(10)])
    idx = got[0]
    assert all(g is idx for g in got) and idx.refreshes == 1 and len(idx) == 20
    assert await get_index(bk, coll.name, refresh_seconds=60) is idx and idx.refreshes == 1
    # stale: the next use refreshes (once, for concurrent users)
    await asyncio.gather(*[get_index(bk, coll.name, refresh_seconds=0) for _ in range(5)])
    assert idx.refreshes == 2
    # a new model version: a full reload
    await get_index(bk, coll.name, refresh_seconds=60, model="other-model")
    assert idx.refreshes == 3 and idx.model == "other-model" and len(idx) == 0
    clear_registry()
    await coll.drop()


# --- k-NN capability --------------------------------------------------------------------------

def test_knn_query_body():
    body = knn_query("embedding", np.array([0.5, 0.25], dtype=np.float32), 7, {"term": {"status": "RESOLVED"}})
    assert body == {"size": 7, "query": {"knn": {"embedding": {"vector": [0.5, 0.25], "k": 7,
                                                              "filter": {"term": {"status": "RESOLVED"}}}}}}
    json.dumps(body)
    assert "filter" not in knn_query("e", [1.0], 3)["query"]["knn"]["e"]


async def test_knn_is_not_supported_by_osmem(bk):
    clear_knn_cache()
    assert await knn_supported(bk) is False
    assert await knn_supported(bk) is False   # cached
    left = await bk.search.indices.get(index=f"{bk.settings.index_prefix}-knn-probe-*")
    assert left == {}


class _FakeKnnServer(BaseHTTPRequestHandler):
    """A stand-in for a k-NN capable OpenSearch, for the capability probe ONLY: it answers the
    probe's four requests (create index, index a doc, knn search, delete index) like OpenSearch."""

    protocol_version = "HTTP/1.1"
    calls: list = []
    knn_ok = True

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        path = self.path.split("?")[0]
        type(self).calls.append((self.command, path, body))
        parts = path.strip("/").split("/")
        if self.command == "PUT" and len(parts) == 1:
            ok = body["settings"]["index.knn"] is True and \
                body["mappings"]["properties"]["embedding"]["type"] == "knn_vector"
            self._answer(200 if ok else 400, {"acknowledged": True, "index": parts[0]})
        elif self.command in ("PUT", "POST") and len(parts) == 3 and parts[1] == "_doc":
            self._answer(201, {"_index": parts[0], "_id": parts[2], "result": "created"})
        elif self.command == "POST" and parts[-1] == "_search":
            if not self.knn_ok or "knn" not in body["query"]:
                self._answer(400, {"error": {"type": "unsupported_operation_exception"}, "status": 400})
            else:
                self._answer(200, {"hits": {"total": {"value": 1}, "hits": [{"_id": "probe", "_score": 1.0}]}})
        elif self.command == "DELETE":
            self._answer(200, {"acknowledged": True})
        else:
            self._answer(404, {"error": "not found"})

    do_PUT = do_POST = do_DELETE = do_GET = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("knn_ok", [True, False])
async def test_knn_probe_against_a_capable_server(knn_ok):
    from opensearchpy import AsyncOpenSearch

    handler = type("Handler", (_FakeKnnServer,), {"calls": [], "knn_ok": knn_ok})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    fake = SimpleNamespace(settings=SimpleNamespace(opensearch_url=url, index_prefix="fake", search_knn=True),
                           search=AsyncOpenSearch(hosts=[url], max_retries=0))
    try:
        clear_knn_cache()
        assert await knn_supported(fake) is knn_ok
        assert await knn_supported(fake) is knn_ok   # cached: asked once
        methods = [(m, p.split("/")[-1] if p.count("/") > 1 else "<index>") for m, p, _ in handler.calls]
        assert methods == [("PUT", "<index>"), ("PUT", "probe"), ("POST", "_search"), ("DELETE", "<index>")], methods
        assert handler.calls[0][1].startswith("/fake-knn-probe-")
        mapping = handler.calls[0][2]["mappings"]["properties"]["embedding"]
        assert mapping == {"type": "knn_vector", "dimension": 384,
                           "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"}}
    finally:
        await fake.search.close()
        server.shutdown()
        server.server_close()
        clear_knn_cache()


async def test_knn_switched_off_asks_nothing():
    """IKL_SEARCH_KNN=false: no probe, the in-process index everywhere."""
    from opensearchpy import AsyncOpenSearch

    handler = type("Handler", (_FakeKnnServer,), {"calls": [], "knn_ok": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    fake = SimpleNamespace(settings=SimpleNamespace(opensearch_url=url, index_prefix="fake", search_knn=False),
                           search=AsyncOpenSearch(hosts=[url], max_retries=0))
    try:
        clear_knn_cache()
        assert await knn_supported(fake) is False
        assert handler.calls == []
    finally:
        await fake.search.close()
        server.shutdown()
        server.server_close()
        clear_knn_cache()


async def test_knn_probe_unreachable_server_is_false():
    from opensearchpy import AsyncOpenSearch

    from app.stack import free_port

    url = f"http://127.0.0.1:{free_port()}"
    fake = SimpleNamespace(settings=SimpleNamespace(opensearch_url=url, index_prefix="fake", search_knn=True),
                           search=AsyncOpenSearch(hosts=[url], max_retries=0, timeout=2))
    try:
        clear_knn_cache()
        assert await knn_supported(fake) is False
    finally:
        await fake.search.close()
        clear_knn_cache()


async def test_the_api_loads_its_vector_index_at_start(bk):
    """The first query by meaning does not pay the full load (app/incidents/embeddings.py `warm`)."""
    from app.incidents import embeddings

    clear_knn_cache()   # the test stack's osmem: no k-NN, so the in-process index is what warm loads
    clear_registry()
    await embeddings.warm(bk)
    index = await get_index(bk, "incidents", refresh_seconds=3600, model=embeddings.PROFILE.version)
    assert index.loaded and index.refreshes == 1
