"""The search server's k-NN path for incident vectors, against the in-process index it stands in for.

osmem has no k-NN, so these tests put tests/knn_server.py in front of it (exact k-NN over osmem's
documents, scored as OpenSearch's Lucene engine scores cosine); `IKL_TEST_KNN_OPENSEARCH_URL` points
them at a real OpenSearch with the k-NN plugin instead. Both paths must answer alike: the same
neighbours (all of them, where the engine is exact; within `TOLERANCE` of the in-process cosine).
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from app.embeddings.model import available
from app.users.models import Classification, Role, User
from app.vectors import clear_knn_cache, knn_supported
from tests.knn_server import KnnServer

pytestmark = pytest.mark.skipif(not available(), reason="the embedding model is not installed")

TOLERANCE = 1e-4
REAL = os.environ.get("IKL_TEST_KNN_OPENSEARCH_URL")
TITLES = [
    "Database connection pool exhausted on checkout", "Primary database failover took 20 minutes",
    "TLS certificate expired on the public API", "Expired certificate broke mobile logins",
    "DNS resolver misconfiguration took down internal services", "BGP route leak made the site unreachable",
    "Memory leak in the search indexer crashed nodes", "Out of memory kills on the payments workers",
    "Bad deploy of the billing service returned 500s", "Config push disabled the load balancer health checks",
    "Disk full on the logging cluster stopped ingestion", "Kafka consumer lag delayed notifications",
    "Rate limiter misconfigured throttled every customer", "Cache stampede after a Redis restart",
    "Clock skew broke token validation", "Cron job deleted production files",
]
NAMESPACES = ["payments", "search", "core"]
CLASSES = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED"]


def reader(clearance: str) -> User:
    return User(id=f"u-{clearance}", username=f"reader-{clearance.lower()}", role=Role.VIEWER,
                clearance=Classification(clearance))


@pytest.fixture(scope="module")
async def knn(stack):
    """Backends on their own database and index prefix, talking to a k-NN capable server, with 48
    embedded incidents indexed (vectors included)."""
    from app.backends import connect
    from app.db import ensure_indexes
    from app.incidents import service
    from app.incidents.models import IncidentCreate
    from app.indexing import outbox
    from app.settings import get_settings
    from indexers import incidents as incidents_index
    from indexers.base import ensure_index

    server = None if REAL else KnnServer(stack.opensearch_url)
    url = REAL or server.__enter__()
    tag = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(update={"opensearch_url": url, "mongodb_db": f"ikl_knn_{tag}",
                                                 "index_prefix": f"knn{tag}"})
    bk = connect(settings)

    async def no_sync(index, doc_id):  # no worker should sync these into another database's index
        return None

    bk.notify_index = no_sync
    clear_knn_cache()
    try:
        await ensure_indexes(bk)
        admin = User(id="u-admin", username="knn-admin", role=Role.ADMIN, clearance=Classification.RESTRICTED)
        ids = []
        for i in range(48):
            data = IncidentCreate(title=TITLES[i % len(TITLES)] + f" ({i})", namespace=NAMESPACES[i % 3],
                                  severity="HIGH", status="RESOLVED", category=["database", "network"][i % 2],
                                  root_cause=TITLES[(i * 7) % len(TITLES)], resolution="Rolled back",
                                  data_classification=CLASSES[i % 4])
            ids.append((await service.create_incident(bk, data=data, user=admin))["_id"])
        await ensure_index(bk, incidents_index.INDEX)
        await outbox.drain(bk, jobs=True, due_only=False)   # the embeddings jobs sync the vectors on
        await outbox.drain(bk, due_only=False)
        await bk.search.indices.refresh(index=bk.index_alias("incidents"))
        yield bk, server, ids
    finally:
        try:
            await bk.search.indices.delete(index=f"{settings.index_prefix}-*", ignore_unavailable=True)
            await bk.client.drop_database(settings.mongodb_db)
            await bk.close()
        finally:
            clear_knn_cache()
            if server is not None:
                server.__exit__(None, None, None)


async def test_the_probe_says_yes_and_the_index_carries_vectors(knn):
    bk, _, ids = knn
    from indexers import incidents as incidents_index
    from indexers.base import uses_knn

    assert await knn_supported(bk) is True
    assert await uses_knn(bk, incidents_index.INDEX) is True
    alias = bk.index_alias("incidents")
    mapping = await bk.search.indices.get_mapping(index=alias)
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["embedding"]["type"] == "knn_vector" and props["embedding"]["dimension"] == 384
    settings = next(iter((await bk.search.indices.get_settings(index=alias)).values()))["settings"]["index"]
    assert str(settings.get("knn")).lower() == "true"
    doc = await bk.search.get(index=alias, id=ids[0])
    stored = await bk.mongo.incidents.find_one({"_id": ids[0]})
    vec = np.frombuffer(stored["embedding"], dtype="<f4")
    assert np.allclose(doc["_source"]["embedding"], vec, atol=1e-6)
    assert doc["_source"]["embedding_model"] == stored["embedding_model"]


@pytest.mark.parametrize("clearance", CLASSES)
@pytest.mark.parametrize("namespace", [None, "payments"])
async def test_knn_and_in_process_answer_alike(knn, clearance, namespace):
    bk, server, ids = knn
    from app.incidents import embeddings

    user = reader(clearance)
    before = server.knn_queries if server else 0
    for doc_id in ids[:12]:
        doc = await bk.mongo.incidents.find_one({"_id": doc_id})
        vec = embeddings.stored_vector(doc)
        assert vec is not None
        by_knn = await embeddings.nearest_by_knn(bk, vec, 5, user, namespace=namespace, exclude=(doc_id,))
        local = await embeddings.nearest_in_process(bk, vec, 5, user, namespace=namespace, exclude=(doc_id,))
        if REAL:  # HNSW is approximate: most neighbours, and the same cosines for those found
            assert len(set(by_knn) & set(local)) >= 4
        else:
            assert set(by_knn) == set(local)
        for i in set(by_knn) & set(local):
            assert abs(by_knn[i] - local[i]) < TOLERANCE
        assert doc_id not in by_knn
        visible = {d["_id"]: d for d in await bk.mongo.incidents.find({"_id": {"$in": list(by_knn)}}).to_list(None)}
        for i in by_knn:
            assert Classification(visible[i]["data_classification"]).rank <= user.clearance.rank
            assert namespace is None or visible[i]["namespace"] == namespace
        # the dispatcher takes the k-NN path
        assert await embeddings.nearest(bk, vec, 5, user, namespace=namespace, exclude=(doc_id,)) == by_knn
    if server:
        assert server.knn_queries >= before + 24


async def test_similar_incidents_are_the_same_on_both_paths(knn):
    bk, server, ids = knn
    from app.incidents import similarity

    user = reader("RESTRICTED")
    for doc_id in ids[:6]:
        doc = await bk.mongo.incidents.find_one({"_id": doc_id})
        by_knn = await similarity.similar(bk, doc, user=user, limit=5)
        bk.settings.search_knn = False
        try:
            local = await similarity.similar(bk, doc, user=user, limit=5)
        finally:
            bk.settings.search_knn = True
        assert [m.doc["_id"] for m in by_knn] == [m.doc["_id"] for m in local]
        assert [m.score for m in by_knn] == pytest.approx([m.score for m in local], abs=TOLERANCE)


async def test_other_model_vectors_are_not_neighbours(knn):
    """A vector another model made means something else: k-NN leaves it out, as the in-process index does."""
    bk, _, ids = knn
    from app.incidents import embeddings
    from app.indexing import outbox

    target = ids[-1]   # RESTRICTED, visible to the reader below
    doc = await bk.mongo.incidents.find_one({"_id": target})
    vec = embeddings.stored_vector(doc)
    user = reader("RESTRICTED")
    assert target in await embeddings.nearest_by_knn(bk, vec, 3, user)
    await bk.mongo.incidents.update_one({"_id": target}, {"$set": {"embedding_model": "old-model/incident24"}})
    try:
        await outbox.record(bk, "incidents", target)
        await outbox.drain(bk, index="incidents", doc_id=target, due_only=False)
        await bk.search.indices.refresh(index=bk.index_alias("incidents"))
        assert target not in await embeddings.nearest_by_knn(bk, vec, 3, user)
    finally:
        await bk.mongo.incidents.update_one({"_id": target}, {"$set": {"embedding_model": doc["embedding_model"]}})
        await outbox.record(bk, "incidents", target)
        await outbox.drain(bk, index="incidents", doc_id=target, due_only=False)
        await bk.search.indices.refresh(index=bk.index_alias("incidents"))


async def test_a_refused_knn_query_is_answered_in_process(knn):
    bk, server, ids = knn
    if server is None:
        pytest.skip("needs the test k-NN server to refuse a query")
    from app.incidents import embeddings

    doc = await bk.mongo.incidents.find_one({"_id": ids[3]})
    vec = embeddings.stored_vector(doc)
    user = reader("CONFIDENTIAL")
    expected = await embeddings.nearest_in_process(bk, vec, 5, user, exclude=(ids[3],))
    server.refuse_knn = True
    try:
        assert await embeddings.nearest(bk, vec, 5, user, exclude=(ids[3],)) == expected
    finally:
        server.refuse_knn = False


async def test_an_index_built_without_vectors_is_rebuilt_with_them(knn):
    """An index made while the server had no k-NN (or by an older definition) does not match the
    definition once k-NN is there: ensure_index rebuilds it, vectors included."""
    bk, _, ids = knn
    from indexers import incidents as incidents_index
    from indexers.base import alias_targets, ensure_index

    alias = bk.index_alias("incidents")
    old = await alias_targets(bk, incidents_index.INDEX)
    plain = f"{alias}-vplain"
    await bk.search.indices.create(index=plain, body=incidents_index.INDEX.body(knn=False))
    await bk.search.indices.update_aliases(body={"actions": [{"add": {"index": plain, "alias": alias}}] +
                                                 [{"remove": {"index": o, "alias": alias}} for o in old]})
    stats = await ensure_index(bk, incidents_index.INDEX)
    assert stats is not None and stats["documents"] == len(ids)
    assert await alias_targets(bk, incidents_index.INDEX) == [stats["index"]]
    doc = await bk.search.get(index=alias, id=ids[5])
    assert len(doc["_source"]["embedding"]) == 384
    assert await ensure_index(bk, incidents_index.INDEX) is None   # now it matches

