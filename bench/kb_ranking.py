"""Benchmark: knowledge-base ranking quality and search latency.

    .venv/bin/python bench/kb_ranking.py [--dataset ../shared/datasets/public-incidents.jsonl]

Loads the dataset's postmortems as published articles (category from the dataset; title and content
only, so both rankers see the same text), then queries with each incident's `root_cause`, leaving
out the article made from that same incident (the service never sees it: it is classified above the
reader's clearance for that query; the baseline excludes it by id). An article is relevant when it
shares the category.
Prints nDCG@10 and MRR@10 for the service's ranking (through the API) and for plain BM25 over title
and content (a standard-analyzer index queried with multi_match), and search latency p50/p99 through
the API (uvicorn, one worker) against the service's full-text query sent straight to the search server,
and the API process's CPU per search (new queries, then the same again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from pathlib import Path

import httpx

from harness import ROOT, api_pid, api_server, cpu_seconds, local_stack  # noqa: I001 - puts the project on sys.path

from app.articles.ranking import MATCH_FIELDS, MAX_WINDOW  # noqa: E402
from app.settings import get_settings  # noqa: E402
from indexers.articles import search_body  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "public-incidents.jsonl"
BASELINE_INDEX = "bench-plain-bm25"
K = 10


def ndcg_at_k(rels: list[int], total_relevant: int, k: int = K) -> float:
    dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rels[:k]))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(total_relevant, k)))
    return dcg / ideal if ideal else 0.0


def rr_at_k(rels: list[int], k: int = K) -> float:
    return next((1 / (i + 1) for i, r in enumerate(rels[:k]) if r), 0.0)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def setup(rows: list[dict]) -> tuple[str, dict[str, str]]:
    """Articles created through the service; returns (a reader's token, incident id -> article id)."""
    from app import demo
    from app.articles import service as articles
    from app.articles.models import ArticleCreate
    from app.backends import connect
    from app.indexing import outbox
    from app.main import prepare
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Classification, Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    await prepare(bk)
    admin = await users.create_user(bk, data=UserCreate(username="bench", role=Role.ADMIN,
                                                        clearance=Classification.RESTRICTED))
    reader = await users.create_user(bk, data=UserCreate(username="reader", role=Role.VIEWER,
                                                         clearance=Classification.INTERNAL))
    token = await users.issue_token(bk, user=reader)
    mapping = {}
    for row in rows:
        doc = await articles.create_article(bk, user=admin, data=ArticleCreate(
            title=demo.incident_from_row(row, "INC-1").title, content=row["postmortem_markdown"] or row["root_cause"],
            article_type="POSTMORTEM_SUMMARY", category=row["category"], status="PUBLISHED",
            data_classification="INTERNAL"))
        mapping[row["id"]] = doc["_id"]
    await outbox.flush(bk)
    from app.articles import embeddings as article_embeddings  # what workers do after each write

    while await article_embeddings.backfill(bk):
        pass
    alias = bk.index_alias("articles")
    await bk.search.indices.refresh(index=alias)
    # the plain baseline: standard analyzer, title and content, no weights
    await bk.search.indices.create(index=BASELINE_INDEX, body={
        "mappings": {"properties": {"title": {"type": "text"}, "content": {"type": "text"}}}})
    for row in rows:
        doc = await bk.mongo.articles.find_one({"_id": mapping[row["id"]]})
        await bk.search.index(index=BASELINE_INDEX, id=doc["_id"], body={"title": doc["title"], "content": doc["content"]})
    await bk.search.indices.refresh(index=BASELINE_INDEX)
    await bk.close()
    return token, mapping


async def hide(article_id: str, hidden: bool) -> None:
    """Leave the query's own article out the way the product would: classify it above the reader's
    clearance (RESTRICTED), so the service never sees it as a candidate; then restore it."""
    from app.articles import service as articles
    from app.articles.models import ArticleUpdate
    from app.backends import connect
    from app.indexing import outbox
    from app.settings import get_settings
    from app.users import service as users

    bk = connect(get_settings(), jobs=True)
    admin = await users.get_user_by_username(bk, username="bench")
    doc = await bk.mongo.articles.find_one({"_id": article_id})
    await articles.update_article(bk, slug=doc["slug"], user=admin, data=ArticleUpdate(
        data_classification="RESTRICTED" if hidden else "INTERNAL"))
    await outbox.flush(bk)
    await bk.search.indices.refresh(index=bk.index_alias("articles"))
    await bk.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    args = ap.parse_args()
    rows = [json.loads(x) for x in args.dataset.read_text().splitlines() if x.strip()]
    with local_stack("ikl_kb_bench", IKL_RATE_LIMIT_SEARCH=str(10**9)) as stack:
        token, mapping = asyncio.run(setup(rows))
        article_category = {mapping[r["id"]]: r["category"] for r in rows}
        with api_server() as base:
            http = httpx.Client(timeout=30)
            alias = f"{get_settings().index_prefix}-articles"
            headers = {"Authorization": f"Token {token}"}
            scores = {"service": ([], []), "plain BM25": ([], [])}
            api_ms, direct_ms = [], []
            for row in rows:
                own = mapping[row["id"]]
                relevant_total = sum(1 for a, c in article_category.items() if c == row["category"] and a != own)
                asyncio.run(hide(own, True))
                t = time.perf_counter()
                r = http.post(f"{base}/api/knowledge/knowledge-articles/search/",
                              json={"query": row["root_cause"], "limit": K}, headers=headers)
                api_ms.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                asyncio.run(hide(own, False))
                ranked = [x["id"] for x in r.json()["results"]]
                assert own not in ranked
                body = search_body(row["root_cause"], filters=[], size=MAX_WINDOW)  # the API's request
                t = time.perf_counter()
                http.post(f"{stack.opensearch_url}/{alias}/_search", params={"filter_path": MATCH_FIELDS},
                          json=body).raise_for_status()
                direct_ms.append((time.perf_counter() - t) * 1000)
                plain = http.post(f"{stack.opensearch_url}/{BASELINE_INDEX}/_search", json={
                    "size": K, "_source": False, "query": {"bool": {
                        "must": [{"multi_match": {"query": row["root_cause"], "fields": ["title", "content"]}}],
                        "must_not": [{"ids": {"values": [own]}}]}}}).json()
                baseline = [h["_id"] for h in plain["hits"]["hits"]]
                for name, ids in (("service", ranked), ("plain BM25", baseline)):
                    rels = [1 if article_category[i] == row["category"] else 0 for i in ids]
                    scores[name][0].append(ndcg_at_k(rels, relevant_total))
                    scores[name][1].append(rr_at_k(rels))
            queries = [f"{r['company']} {r['subcategory']} outage {r.get('date') or r['id']}" for r in rows]
            cpu = cpu_passes(http, base, headers, queries)
        split = asyncio.run(search_split(queries))
    print(f"\n{len(rows)} articles from {args.dataset.name}; {len(rows)} queries (root_cause), own article left out;"
          f" relevant = same category\n")
    print(f"{'ranking':14} {'nDCG@10':>8} {'MRR@10':>8}")
    for name, (nd, rr) in scores.items():
        print(f"{name:14} {statistics.mean(nd):8.4f} {statistics.mean(rr):8.4f}")
    print(f"\nsearch latency, sequential ({len(rows)} queries):")
    print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'API (POST search/, full ranking)':34} {pct(api_ms, 50):8.2f} {pct(api_ms, 99):8.2f}")
    print(f"{'search server (same full-text query)':34} {pct(direct_ms, 50):8.2f} {pct(direct_ms, 99):8.2f}")
    print(f"{'ratio API / direct (p50)':34} {pct(api_ms, 50) / pct(direct_ms, 50):8.2f}")
    print(f"\nAPI process CPU per search (the uvicorn process's user + system time over {len(rows)} sequential "
          f"searches, HTTP included; the search server's work is in its own process):")
    for name, ms in cpu.items():
        print(f"  {name:58} {ms:6.2f} ms")
    print(f"\nIn process, the same queries repeated ({PASSES} passes of {len(rows)}, the least loaded pass):")
    for name, ms in split.items():
        print(f"  {name:58} {ms:6.2f} ms")


PASSES = 6


async def search_split(queries: list[str]) -> dict[str, float]:
    """CPU ms per search of `ranking.search` in this process (the API's work without HTTP: the engine and
    MongoDB calls, the re-ranking, the usage record), and of its engine calls alone (every match's id and
    score, the page's stored terms), the least of PASSES passes over the queries (the 2 cores are shared
    with the engine and MongoDB): the rest is the API's own work beyond the engine calls."""
    from app.articles import ranking
    from app.articles.models import SearchInput
    from app.backends import connect
    from app.users import service as users
    from indexers import articles as articles_index

    bk = connect(get_settings())
    reader = await users.get_user_by_username(bk, username="reader")
    alias = bk.index_alias("articles")

    async def search(q: str) -> None:
        await ranking.search(bk, user=reader, data=SearchInput(query=q, limit=K))

    async def engine(q: str) -> None:
        res = await bk.search.search(index=alias, filter_path=MATCH_FIELDS, body=articles_index.search_body(
            q, filters=ranking.filters_for(SearchInput(query=q), reader), size=MAX_WINDOW))
        await ranking._terms(bk, alias, [h["_id"] for h in (res.get("hits") or {}).get("hits", [])][:K])

    for q in queries:  # each query's vector and analysis made
        await search(q)
    out = {}
    for name, call in (("ranking.search, whole", search), ("its engine calls alone", engine)):
        passes = []
        for _ in range(PASSES):
            t = time.process_time()
            for q in queries:
                await call(q)
            passes.append((time.process_time() - t) * 1000 / len(queries))
        out[name] = min(passes)
    out["the API's own work beyond the engine calls"] = out["ranking.search, whole"] - out["its engine calls alone"]
    await bk.close()
    return out


def cpu_passes(http: httpx.Client, base: str, headers: dict[str, str], queries: list[str]) -> dict[str, float]:
    """CPU ms per search of the API process: queries it has not seen (their vector and analysis made), then
    the same again (both known: a repeated query, a page 2)."""
    pid = api_pid(int(base.rsplit(":", 1)[1]))
    out = {}
    for name in ("new queries (company, subcategory)", "the same queries again"):
        before = cpu_seconds(pid)
        for q in queries:
            http.post(f"{base}/api/knowledge/knowledge-articles/search/", json={"query": q, "limit": K},
                      headers=headers).raise_for_status()
        out[name] = (cpu_seconds(pid) - before) * 1000 / len(queries)
    return out


if __name__ == "__main__":
    main()
