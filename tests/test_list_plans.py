"""Every list page is read in index order: for every ordering of every list, both directions and the
default, as an admin and as a viewer whose clearance filters it, MongoDB's plan has no blocking SORT and no
COLLSCAN — the page and its count (read from the profiler, as the service ran them). (A reader's bookmarks
are read by id, then sorted: they are not a walk of the articles.)"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest

from app.articles.service import LIST_SPEC as ARTICLES, REVIEW_SPEC
from app.backends import API_APP
from app.incidents.service import LIST_SPEC as INCIDENTS
from app.patterns.run_records import LIST_SPEC as RUNS
from app.patterns.service import LIST_SPEC as PATTERNS
from app.postmortems.generations import LIST_SPEC as GENERATIONS
from app.postmortems.service import LIST_SPEC as POSTMORTEMS
from app.recommendations.service import LIST_SPEC as RECOMMENDATIONS

LISTS = [("/api/v1/incidents/", INCIDENTS), ("/api/knowledge/knowledge-articles/", ARTICLES),
         ("/api/knowledge/knowledge-articles/due_for_review/", REVIEW_SPEC),
         ("/api/knowledge/postmortems/", POSTMORTEMS), ("/api/knowledge/postmortems/overdue/", POSTMORTEMS),
         ("/api/knowledge/recommendations/", RECOMMENDATIONS), ("/api/knowledge/learning-patterns/", PATTERNS),
         ("/api/knowledge/postmortem-generations/", GENERATIONS),
         ("/api/knowledge/learning-patterns/mining_runs/", RUNS)]


@pytest.fixture
async def raw(app):
    """A client without the contract check: other tests store partial documents straight into MongoDB, which
    some orderings bring to a first page; what is checked here is how pages are read."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def profiled(bk):
    db = bk.mongo
    await db.command("profile", 2)
    try:
        yield db
    finally:
        await db.command("profile", 0)


async def plans(db, collection: str, since: datetime) -> list[tuple[str, bool, str]]:
    out = []
    # the API's own reads: a worker's job running meanwhile (another process) is not the page
    async for p in db["system.profile"].find({"ts": {"$gte": since}, "ns": f"{db.name}.{collection}",
                                              "appName": API_APP}):
        cmd = p.get("command") or {}
        if ("find" in cmd and cmd.get("sort")) or "aggregate" in cmd:
            out.append((p.get("planSummary", ""), bool(p.get("hasSortStage")), str(cmd)[:200]))
    return out


@pytest.mark.parametrize("path,spec", LISTS, ids=[p for p, _ in LISTS])
async def test_every_ordering_is_read_in_index_order_for_every_clearance(raw, admin, viewer, profiled, path, spec):
    bad, seen = [], 0
    for who, headers in (("admin", admin), ("viewer", viewer)):
        for ordering in [None, *[f"{d}{name}" for name in sorted(spec.ordering) for d in ("", "-")]]:
            since = datetime.now(timezone.utc)
            time.sleep(0.002)
            params = {"page_size": 5, **({"ordering": ordering} if ordering else {})}
            r = await raw.get(path, headers=headers, params=params)
            if r.status_code == 403:  # an admin-only list
                continue
            assert r.status_code == 200, (who, ordering, r.text)
            for plan, sort, cmd in await plans(profiled, spec.collection, since):
                seen += 1
                if sort or "COLLSCAN" in plan:
                    bad.append(f"{who} {ordering or '(default)'}: {'blocking SORT ' if sort else ''}{plan} {cmd}")
    assert seen, "no page read was profiled"
    assert not bad, "\n".join(bad[:6])


async def test_a_selective_filter_is_read_from_the_index_it_leads(bk):
    """One incident's recommendations among many: read from (incident, classification, confidence, _id),
    not by walking every recommendation in confidence order."""
    from app.listing import parse_list_params
    from app.users.models import Classification

    tag = f"plan-{time.time_ns()}"
    docs = [{"_id": f"{tag}-{i}", "incident": f"{tag}-inc-{i % 50}", "data_classification": "INTERNAL",
             "confidence_score": (i % 97) / 97, "recommendation_type": "SOLUTION", "target": str(i)}
            for i in range(1000)]
    await bk.mongo.recommendations.insert_many(docs)
    try:
        q = parse_list_params(RECOMMENDATIONS, {"incident": f"{tag}-inc-7"})
        assert q.hint and q.hint[0] == ("incident", 1), q.hint
        flt = {"$and": [{"data_classification": {"$in": Classification.INTERNAL.visible()}}, q.filter]}
        plan = await bk.mongo.recommendations.find(flt, hint=q.hint).sort(q.sort).limit(20).explain()
        assert "SORT" not in str(plan["queryPlanner"]["winningPlan"]).replace("SORT_MERGE", "")
        assert plan["executionStats"]["totalDocsExamined"] <= 20, plan["executionStats"]
    finally:
        await bk.mongo.recommendations.delete_many({"_id": {"$regex": f"^{tag}-"}})


ARTICLES_URL = "/api/knowledge/knowledge-articles/"


def counted_list(client, editor, category: str):
    """(make, count): add an article of `category`; the count its list answers."""
    from tests.conftest import unique

    async def make():
        r = await client.post(ARTICLES_URL, headers=editor, json={
            "title": unique("Counted"), "content": "x", "article_type": "RUNBOOK", "category": category})
        assert r.status_code == 201, r.text

    async def count():
        r = await client.get(ARTICLES_URL, headers=editor, params={"category": category})
        return r.json()["count"]

    return make, count


async def test_large_counts_are_reused_briefly_small_ones_are_always_exact(client, editor, monkeypatch):
    import asyncio

    from app import listing
    from tests.conftest import unique

    make, count = counted_list(client, editor, unique("count"))
    await make()
    await make()
    assert await count() == 2
    await make()
    assert await count() == 3  # below COUNT_EXACT_BELOW: exact at once
    monkeypatch.setattr(listing, "COUNT_EXACT_BELOW", 3)
    monkeypatch.setattr(listing, "COUNT_CACHE_SECONDS", 0.5)
    assert await count() == 3  # now cached
    await make()
    assert await count() == 3  # reused within the window
    await asyncio.sleep(0.6)
    assert await count() == 4


async def test_a_count_in_use_is_recounted_in_the_background_before_it_runs_out(client, editor, monkeypatch):
    """At a million incidents the request that found the list's count run out waited for the recount (the slowest
    request, 415 ms; docs/benchmarks.md). A request in the last part of the count's window answers with the count it
    has and starts the recount; the next requests get the new count, before the old one would have run out."""
    import asyncio

    from app import listing
    from tests.conftest import unique

    category = unique("early")
    make, count = counted_list(client, editor, category)
    for _ in range(3):
        await make()
    monkeypatch.setattr(listing, "COUNT_EXACT_BELOW", 3)
    monkeypatch.setattr(listing, "COUNT_CACHE_SECONDS", 2.0)  # reused 2 s, recounted from 1 s on
    monkeypatch.setattr(listing, "COUNT_REFRESH_SHARE", 0.5)
    assert await count() == 3  # counted, and kept
    await make()
    assert await count() == 3  # reused
    await asyncio.sleep(1.1)
    assert await count() == 3  # at once, with the count it has; the recount starts
    await asyncio.sleep(0.3)
    assert await count() == 4  # the recount's, well before the first count's 2 s ran out
    for _ in range(2):  # below COUNT_EXACT_BELOW again: exact from the next recount on
        r = await client.get(ARTICLES_URL, headers=editor, params={"category": category})
        gone = await client.delete(f"{ARTICLES_URL}{r.json()['results'][0]['slug']}/", headers=editor)
        assert gone.status_code == 204, gone.text
    await asyncio.sleep(1.1)
    await count()  # in the recount part of the window: recounted, 2, no longer kept
    await asyncio.sleep(0.3)
    assert await count() == 2
    await make()
    assert await count() == 3  # exact at once


def test_a_larger_count_is_reused_longer_up_to_a_bound():
    from app.listing import COUNT_CACHE_MAX_SECONDS, COUNT_CACHE_SECONDS, count_reuse_seconds

    assert count_reuse_seconds(10_000) == count_reuse_seconds(100_000) == COUNT_CACHE_SECONDS
    assert count_reuse_seconds(500_000) == 5 * COUNT_CACHE_SECONDS  # 500,000 matches: recounted every 25 s
    assert count_reuse_seconds(10**9) == COUNT_CACHE_MAX_SECONDS


async def test_concurrent_pages_of_one_list_share_one_count(client, editor, bk, monkeypatch):
    """Before, every request counted on its own: at a million incidents 32 concurrent first pages each
    counted 500,000 keys and all ran past their deadline, so no count was ever cached. Now the requests
    for one list (the same filter, the reader's clearance included) while its count runs wait for it;
    another reader's list counts on its own."""
    import asyncio

    from app import listing
    from tests.conftest import unique

    category = unique("single")
    r = await client.post("/api/knowledge/knowledge-articles/", headers=editor, json={
        "title": unique("Counted once"), "content": "x", "article_type": "RUNBOOK", "category": category})
    assert r.status_code == 201, r.text
    counted: list[str] = []
    real = listing.AsyncCollection.count_documents

    async def slow_count(self, flt, *args, **kwargs):
        if category in str(flt):
            counted.append(self.name)
            await asyncio.sleep(0.3)  # long enough for every request to arrive while it runs
        return await real(self, flt, *args, **kwargs)

    monkeypatch.setattr(listing.AsyncCollection, "count_documents", slow_count)
    pages = await asyncio.gather(*(client.get("/api/knowledge/knowledge-articles/", headers=editor,
                                              params={"category": category}) for _ in range(8)))
    assert [p.status_code for p in pages] == [200] * 8 and {p.json()["count"] for p in pages} == {1}
    assert counted == ["articles"]
