"""A write is searchable in the very next request: indexed inline right after the MongoDB commit; when that
cannot happen in time the outbox still delivers it (tests/test_faults.py covers the engine being down)."""

from __future__ import annotations

from tests.articles.conftest import BASE
from tests.conftest import unique


async def test_an_article_is_found_by_the_request_right_after_its_201(client, editor, bk):
    word = unique("rywterm").replace("-", "")
    r = await client.post(BASE, headers=editor, json={"title": f"Runbook {word}", "content": f"Steps for {word}.",
                                                      "article_type": "RUNBOOK", "category": "Database",
                                                      "status": "PUBLISHED"})
    assert r.status_code == 201, r.text
    found = (await client.post(BASE + "search/", headers=editor, json={"query": word})).json()
    assert [a["id"] for a in found["results"]] == [r.json()["id"]], found
    assert await bk.mongo.outbox.count_documents({"index": "articles", "doc_id": r.json()["id"]}) == 0
    # an edit and a delete are seen at once too
    slug = r.json()["slug"]
    assert (await client.patch(f"{BASE}{slug}/", headers=editor, json={"title": f"Renamed {word}"})).status_code == 200
    found = (await client.post(BASE + "search/", headers=editor, json={"query": word})).json()
    assert found["results"][0]["title"] == f"Renamed {word}", found
    assert (await client.delete(f"{BASE}{slug}/", headers=editor)).status_code == 204
    assert (await client.post(BASE + "search/", headers=editor, json={"query": word})).json()["total_count"] == 0


async def test_with_inline_indexing_off_the_outbox_delivers_it(client, editor, bk):
    from app.indexing import outbox

    bk.settings.index_inline_timeout = 0
    try:
        r = await client.post(BASE, headers=editor, json={"title": unique("Later"), "content": "x",
                                                          "article_type": "RUNBOOK", "category": "General"})
        assert r.status_code == 201
        assert await bk.mongo.outbox.count_documents({"index": "articles", "doc_id": r.json()["id"]}) == 1
        await outbox.flush(bk, index="articles")
    finally:
        bk.settings.index_inline_timeout = 2.0


async def test_an_article_is_ranked_by_meaning_from_the_request_right_after_its_201(client, editor, bk):
    """Its vector is made with the write, like its index sync: before, a search made before the worker's
    embedding job ran gave the meaning's share of the similarity to the words, and the same search a moment
    later another score (a test saw 0.936 then 0.911 for one article)."""
    from app.articles import embeddings as article_embeddings

    word = unique("meaningnow").replace("-", "")
    r = await client.post(BASE, headers=editor, json={"title": f"Failover runbook {word}", "article_type": "RUNBOOK",
                                                      "content": f"Promote the replica when the primary {word} fails.",
                                                      "category": "Database", "status": "PUBLISHED"})
    assert r.status_code == 201, r.text
    doc = await bk.mongo.articles.find_one({"_id": r.json()["id"]})
    assert article_embeddings.PROFILE.has_vector(doc)
    assert doc["embedding_hash"] == article_embeddings.PROFILE.text_hash(article_embeddings.embedding_text(doc))
    assert await bk.mongo.outbox.count_documents({"doc_id": r.json()["id"]}) == 0  # nothing left for a worker
    first = (await client.post(BASE + "search/", headers=editor, json={"query": f"{word} failover"})).json()
    await client.post(BASE + "search/", headers=editor, json={"query": "warm"})  # whatever else happens meanwhile
    again = (await client.post(BASE + "search/", headers=editor, json={"query": f"{word} failover"})).json()
    assert [(a["id"], a["similarity_score"]) for a in first["results"]] == \
        [(a["id"], a["similarity_score"]) for a in again["results"]]
