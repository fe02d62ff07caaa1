"""With the incident's vector known, the similar-incident text query scores only the nearest by meaning
plus the incidents the vector index may not hold yet (an `ids` filter of bounded size), and still finds
an incident written a moment ago, or searchable but not embedded yet, by its words
(app/incidents/similarity.py `_text_pool`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app import vectors
from app.incidents import embeddings, similarity
from app.indexing import outbox
from app.users.models import Classification, Role, User
from indexers import incidents as incidents_index
from tests.conftest import unique

BASE = "/api/v1/incidents/"
READER = User(id="bounded-reader", username="bounded-reader", role=Role.ADMIN, clearance=Classification.RESTRICTED)
POOL = 4
TOPICS = ["Kafka consumer lag on billing after the broker disk filled up",
          "TLS certificate expired on the payments gateway edge proxy",
          "Postgres primary ran out of connections during the checkout peak",
          "DNS resolver timeouts broke service discovery for the orders API",
          "Memory leak in the search indexer crash-looped its pods",
          "Redis cache eviction storm slowed the session service",
          "Bad feature flag rollout returned 500s on login",
          "S3 bucket policy change denied uploads for the media service",
          "Cron job filled the shared disk with debug logs",
          "Load balancer health checks failed after a port change"]


@pytest.fixture
def captured(monkeypatch):
    """The similar-incident query bodies sent to the search engine, in order."""
    bodies: list[dict] = []
    original = incidents_index.similar_query

    def recording(*a, **k):
        body = original(*a, **k)
        bodies.append(body)
        return body

    monkeypatch.setattr(incidents_index, "similar_query", recording)
    return bodies


def ids_filter(body: dict) -> list[str] | None:
    for clause in body["query"]["bool"]["filter"]:
        if "ids" in clause:
            return clause["ids"]["values"]
    return None


async def _settled_corpus(client, editor, bk, ns: str, tag: str) -> list[dict]:
    """The topics as incidents in `ns`, searchable, embedded and in this process's vector index."""
    made = []
    for i, title in enumerate(TOPICS):
        r = await client.post(BASE, headers=editor, json={
            "namespace": ns, "title": f"{title} {tag}", "severity": "HIGH", "affected_services": [f"svc-{i}"],
            "root_cause": f"{title.split()[0]} misconfiguration {tag}"})
        assert r.status_code == 201, r.text
        made.append(r.json())
    await outbox.flush(bk, index="incidents")
    await outbox.flush(bk, index="embeddings", jobs=True, timeout=120)
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))
    await vectors.get_index(bk, "incidents", refresh_seconds=0, model=embeddings.PROFILE.version)
    return made


@pytest.fixture
def bounded(monkeypatch):
    """A pool of POOL incidents (the namespace holds more), nothing counted as written or embedded a moment
    ago by the clock alone, and no cap on what the vector index may be missing (other tests leave jobs)."""
    monkeypatch.setattr(similarity, "TEXT_POOL", POOL)
    monkeypatch.setattr(similarity, "NOT_INDEXED_MAX", 10**6)
    monkeypatch.setattr(similarity, "RECENT_SECONDS", 0.0)
    monkeypatch.setattr(embeddings, "JUST_EMBEDDED_SECONDS", 0.0)


async def test_the_text_query_scores_only_the_nearest_by_meaning_with_the_same_scores(
        client, editor, bk, bounded, captured):
    if not embeddings.store.available():
        pytest.skip("the embedding model is not installed")
    ns, tag = unique("bounded").lower()[:30], unique("zq").lower().replace("-", "")
    made = await _settled_corpus(client, editor, bk, ns, tag)
    mine = {m["id"] for m in made}
    query = await bk.mongo.incidents.find_one({"_id": made[0]["id"]})
    got = await similarity.similar(bk, query, user=READER, limit=3, namespace=ns)

    qvec = await embeddings.query_vector(query)
    nearest = await embeddings.nearest(bk, qvec, POOL, READER, namespace=ns, exclude=(query["_id"],))
    late = await embeddings.not_in_vector_index(bk, limit=10**6)
    assert captured, "the text query was sent"
    for body in captured:  # every window: the same bounded pool, the nearest by meaning among this namespace
        pool = ids_filter(body)
        assert pool is not None and sorted(pool) == sorted(set(nearest) | late)
        assert {i for i in pool if i in mine} == set(nearest), "none of ours is late: only the nearest are scored"
    assert got and {m.doc["_id"] for m in got} <= set(nearest) | late

    # a pooled incident's text relevance is the one the unbounded query gives it (whole-index statistics)
    visible = {"bool": {"filter": [{"match_all": {}}, {"term": {"namespace": ns}}]}}
    free = await incidents_index.similar_incidents(bk, dict(query), limit=50, visible=visible)
    pooled = await incidents_index.similar_incidents(bk, dict(query), limit=50, visible=visible, ids=sorted(nearest))
    free_scores = {h["id"]: h["score"] for h in free}
    assert pooled and all(h["score"] == pytest.approx(free_scores[h["id"]], rel=1e-6) for h in pooled)

    # no vector asked for, or a detection-date scope: the unbounded query, as before
    captured.clear()
    await similarity.similar(bk, query, user=READER, limit=3, namespace=ns, semantic=False)
    await similarity.similar(bk, query, user=READER, limit=3, namespace=ns,
                             since=datetime.now(timezone.utc) - timedelta(days=1))
    assert captured and all(ids_filter(b) is None for b in captured)


async def test_an_incident_not_in_the_vector_index_yet_is_still_found_by_its_words(
        client, editor, bk, bounded, captured, monkeypatch):
    if not embeddings.store.available():
        pytest.skip("the embedding model is not installed")
    ns, tag = unique("bounded").lower()[:30], unique("zq").lower().replace("-", "")
    made = await _settled_corpus(client, editor, bk, ns, tag)
    query = await bk.mongo.incidents.find_one({"_id": made[1]["id"]})
    twin_body = {"namespace": ns, "title": f"Payments gateway edge proxy TLS certificate expired again {tag}",
                 "severity": "HIGH", "affected_services": ["svc-1"], "root_cause": f"TLS misconfiguration {tag}",
                 "status": "RESOLVED"}

    # searchable (its index sync done) but its embedding job not run: not in the vector index, so only the
    # text query can find it, and the pool carries it
    r = await client.post(BASE, headers=editor, json=twin_body)
    assert r.status_code == 201, r.text
    searchable = r.json()
    await outbox.flush(bk, index="incidents")
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))
    assert await bk.mongo.outbox.count_documents({"index": "embeddings", "doc_id": searchable["id"]}) == 1
    captured.clear()
    got = await similarity.similar(bk, query, user=READER, limit=5, namespace=ns)
    assert all(searchable["id"] in ids_filter(b) for b in captured)
    hit = next(m for m in got if m.doc["_id"] == searchable["id"])
    assert hit.factors[0]["factor"] == "text" and hit.factors[0]["value"] > 0
    assert "not searchable yet" not in hit.factors[0]["detail"], "scored by the engine, in the pool"

    # written a moment ago (its sync and refresh, its embedding job maybe not done): found at once
    monkeypatch.setattr(similarity, "RECENT_SECONDS", 10.0)
    r = await client.post(BASE, headers=editor, json={**twin_body, "title": f"TLS certificate on the payments "
                                                                             f"gateway edge proxy expired {tag}"})
    assert r.status_code == 201, r.text
    fresh = r.json()
    got = await similarity.similar(bk, query, user=READER, limit=5, namespace=ns)
    assert fresh["id"] in {m.doc["_id"] for m in got}
