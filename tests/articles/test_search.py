"""POST search/: the documented shape, ranking that deserves the word, visibility, analytics."""

from __future__ import annotations

from tests.articles.conftest import BASE, sync_search
from tests.conftest import unique
from tests.incidents.test_rest import error_shape

SPEC_SEARCH = {
    "query": "database connection timeout",
    "article_types": ["RUNBOOK", "TROUBLESHOOTING"],
    "categories": ["Database"],
    "difficulty_levels": ["INTERMEDIATE", "ADVANCED"],
    "limit": 20,
    "offset": 0,
}


async def search(client, headers, **body):
    r = await client.post(BASE + "search/", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_spec_search_example_verbatim(client, viewer, make_article, bk):
    a = await make_article(title="Database Connection Troubleshooting", article_type="TROUBLESHOOTING",
                           category="Database", difficulty_level="INTERMEDIATE",
                           summary="Guide for resolving database connection issues",
                           content="When the database connection pool is exhausted clients see a connection timeout.")
    await make_article(title="Database connection timeout for beginners", article_type="TROUBLESHOOTING",
                       category="Database", difficulty_level="BEGINNER", content="database connection timeout")
    await sync_search(bk)
    r = await client.post(BASE + "search/", json=SPEC_SEARCH, headers=viewer)
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"results", "total_count", "query", "filters", "pagination"}
    assert body["query"] == SPEC_SEARCH["query"]
    assert body["filters"] == {k: SPEC_SEARCH[k] for k in ("article_types", "categories", "difficulty_levels")}
    assert body["pagination"] == {"limit": 20, "offset": 0, "has_more": False}
    slugs = [x["slug"] for x in body["results"]]
    assert a["slug"] in slugs and all(x["category"] == "Database" for x in body["results"])
    hit = body["results"][slugs.index(a["slug"])]
    assert set(hit) == {"id", "title", "slug", "summary", "article_type", "category", "similarity_score",
                        "relevance_score", "popularity_score", "matching_keywords"}
    for k in ("similarity_score", "relevance_score", "popularity_score"):
        assert 0 <= hit[k] <= 1
    assert hit["matching_keywords"] == ["database", "connection", "timeout"]
    assert body["total_count"] == len(body["results"])  # the BEGINNER one is filtered out


async def test_title_outranks_content_only_mentions(client, viewer, make_article, bk):
    topic = unique("zebrafail").replace("-", "")
    in_content = await make_article(title="Misc operations notes", content=f"once we saw {topic} on a host. " * 3)
    in_title = await make_article(title=f"Handling {topic} errors", content="Steps to recover the service.")
    in_tags = await make_article(title="Another guide", content="steps", tags=[topic])
    await sync_search(bk)
    body = await search(client, viewer, query=topic)
    # the field weights order the engine's relevance: title, then tags, then a mention in the content; the
    # blended rank may put the content's mention above the tag (three mentions make it more similar to the
    # query: how much depends on the random topic word), never above the title
    relevance = {x["id"]: x["relevance_score"] for x in body["results"]}
    assert relevance[in_title["id"]] == 1.0 > relevance[in_tags["id"]] > relevance[in_content["id"]] > 0
    assert body["results"][0]["id"] == in_title["id"]


async def test_identifiers_are_findable(client, viewer, make_article, bk):
    marker = unique("ident").replace("-", "")
    a = await make_article(title=f"Pod restarts {marker}",
                           content="Pods of payment-service were OOMKilled; clients logged ECONNREFUSED.")
    await sync_search(bk)
    for q in ("OOMKilled", "payment-service", "ECONNREFUSED", "oomkilled"):
        body = await search(client, viewer, query=f"{q} {marker}")
        assert body["results"] and body["results"][0]["id"] == a["id"], q
        assert q.lower() in body["results"][0]["matching_keywords"]


async def test_stemming_and_stop_words(client, viewer, make_article, bk):
    marker = unique("stem").replace("-", "")
    a = await make_article(title=f"Connections timing out {marker}", content="The pools were exhausted.")
    await sync_search(bk)
    body = await search(client, viewer, query=f"the connection timed out and pool exhaustion {marker}")
    assert body["results"][0]["id"] == a["id"]
    assert "the" not in body["results"][0]["matching_keywords"]


async def test_similarity_prefers_the_focused_article(client, viewer, make_article, bk):
    marker = unique("focus").replace("-", "")
    focused = await make_article(title=f"Kafka consumer lag {marker}", content="kafka consumer lag rebalancing")
    diluted = await make_article(title=f"Platform handbook {marker}",
                                 content="kafka consumer lag " + " ".join(f"topic{i}" for i in range(300)))
    await sync_search(bk)
    body = await search(client, viewer, query=f"kafka consumer lag {marker}")
    by_id = {x["id"]: x for x in body["results"]}
    assert by_id[focused["id"]]["similarity_score"] > by_id[diluted["id"]]["similarity_score"]


async def test_popularity_breaks_ties(client, viewer, make_article, bk):
    marker = unique("pop").replace("-", "")
    quiet = await make_article(title=f"Guide {marker}", content="same text")
    loved = await make_article(title=f"Guide {marker}", content="same text")
    for _ in range(20):
        await client.get(f"{BASE}{loved['slug']}/", headers=viewer)
    await client.post(f"{BASE}{loved['slug']}/rate/", json={"rating": 5}, headers=viewer)
    await client.post(f"{BASE}{loved['slug']}/bookmark/", headers=viewer)
    await sync_search(bk)
    body = await search(client, viewer, query=f"guide {marker}")
    ids = [x["id"] for x in body["results"]]
    assert ids.index(loved["id"]) < ids.index(quiet["id"])
    by_id = {x["id"]: x for x in body["results"]}
    assert by_id[loved["id"]]["popularity_score"] > by_id[quiet["id"]]["popularity_score"]


async def test_search_respects_visibility(client, viewer, admin, editor, make_article, bk):
    marker = unique("vis").replace("-", "")
    await make_article(headers=admin, title=f"Restricted {marker}", data_classification="RESTRICTED")
    await make_article(title=f"Draft {marker}", status="DRAFT")
    public = await make_article(title=f"Published {marker}")
    await sync_search(bk)
    assert [x["id"] for x in (await search(client, viewer, query=marker))["results"]] == [public["id"]]
    assert (await search(client, viewer, query=marker))["total_count"] == 1
    assert (await search(client, editor, query=marker))["total_count"] == 2   # drafts, not RESTRICTED
    assert (await search(client, admin, query=marker))["total_count"] == 3


async def test_pagination_and_no_results(client, viewer, make_article, bk):
    marker = unique("pg").replace("-", "")
    for i in range(5):
        await make_article(title=f"Page {marker} {i}")
    await sync_search(bk)
    first = await search(client, viewer, query=marker, limit=2)
    second = await search(client, viewer, query=marker, limit=2, offset=2)
    last = await search(client, viewer, query=marker, limit=2, offset=4)
    assert first["total_count"] == 5 and first["pagination"]["has_more"] and not last["pagination"]["has_more"]
    ids = [x["id"] for p in (first, second, last) for x in p["results"]]
    assert len(ids) == len(set(ids)) == 5
    empty = await search(client, viewer, query=unique("nothingmatches").replace("-", ""))
    assert empty["results"] == [] and empty["total_count"] == 0


async def test_bad_search_bodies(client, viewer):
    for body in ({}, {"query": ""}, {"query": "x", "limit": 0}, {"query": "x", "limit": 101},
                 {"query": "x", "offset": -1}, {"query": "x", "article_types": ["ESSAY"]},
                 {"query": "x", "extra": True}):
        error_shape(await client.post(BASE + "search/", json=body, headers=viewer), 400, "VALIDATION_ERROR")
    # an operator-looking key is refused while the body is read (app/jsonsafe.py)
    error_shape(await client.post(BASE + "search/", json={"query": {"$ne": 1}}, headers=viewer), 400, "INVALID_KEY")


async def test_searches_and_clicks_feed_usage_statistics(client, viewer, make_article, bk):
    marker = unique("usage").replace("-", "")
    a = await make_article(title=f"Usage {marker}")
    await sync_search(bk)
    before = (await client.get(BASE + "statistics/", headers=viewer)).json()["usage"]
    body = await search(client, viewer, query=f"Usage {marker}")
    await search(client, viewer, query=unique("zzznothing").replace("-", ""))
    r = await client.get(f"{BASE}{a['slug']}/", params={"search_id": body["search_id"]}, headers=viewer)
    assert r.status_code == 200
    after = (await client.get(BASE + "statistics/", headers=viewer)).json()["usage"]
    assert after["searches"] == before["searches"] + 2
    assert after["searches_without_results"] == before["searches_without_results"] + 1
    assert after["searches_with_click"] == before["searches_with_click"] + 1
    event = await bk.mongo.usage_events.find_one({"_id": body["search_id"]})
    assert event["query"] == f"Usage {marker}" and event["result_count"] == 1


async def test_a_pasted_incident_description_is_a_query(client, viewer, make_article, bk):
    """Before: a 3,000-character query was a 400. Now up to 5,000 characters are taken and the engine gets
    the first distinct content words (the usage record keeps that cut query, not the paste)."""
    topic = unique("quuxpool").replace("-", "")
    runbook = await make_article(title=f"Runbook: {topic} exhausted", content="Raise the pool, restart the pods.")
    await sync_search(bk)
    pasted = (f"Checkout requests failed because the {topic} ran out of connections during the sale. "
              + "The on-call engineer was paged and looked at the dashboards for a long while. " * 40)[:3000]
    r = await client.post(BASE + "search/", headers=viewer, json={"query": pasted})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == runbook["id"] and r.json()["query"] == pasted
    stored = await bk.mongo.usage_events.find_one({"kind": "article.search", "query": {"$regex": topic}},
                                                  sort=[("_id", -1)])
    assert stored and len(stored["query"]) < 600, stored
    r = await client.post(BASE + "search/", headers=viewer, json={"query": "x" * 5001})
    assert r.status_code == 400, r.text


async def test_a_query_analysed_lately_is_not_sent_to_the_engine_again(bk, monkeypatch):
    """The query's analysed words (for the similarity and `matching_keywords`) come from the engine's
    analyzer once per query a process meets: a repeated query or its page 2 makes no analysis call."""
    from app.articles import ranking

    calls = []
    real = bk.search.indices.analyze

    async def counting(**kw):
        calls.append(kw["body"]["text"])
        return await real(**kw)

    monkeypatch.setattr(bk.search.indices, "analyze", counting)
    text = f"Connection pools exhausted on {unique('ledger')}"
    first = await ranking._analyse(bk, text)
    assert calls == [text] and [w for w, _ in first][:3] == ["connection", "pools", "exhausted"]
    assert first[1][1] == ["pool"]  # the analyzer's stem, not the word
    assert await ranking._analyse(bk, text) == first and calls == [text]
    assert await ranking._analyse(bk, text + " again") and len(calls) == 2
