"""What a GraphQL document costs, against what it really makes the service do (issue 15): statistics
fields are costed by the collections they scan and shared between aliases; every list is costed by
the most its resolver can return; and no response is larger than IKL_GRAPHQL_MAX_RESPONSE_BYTES."""

from __future__ import annotations

import asyncio
import copy
import random
import time
import uuid

import httpx
import pytest
from graphql import (GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType, get_named_type, get_nullable_type,
                     is_list_type, parse)

from tests.conftest import unique

ARTICLES = "/api/knowledge/knowledge-articles/"


def code_of(r: httpx.Response) -> str:
    return r.json()["errors"][0]["extensions"]["code"]


def cost(query: str, variables=None) -> int:
    from schema.limits import Limits, analyse, select_operation
    from schema.schema import SEARCH_FIELDS, schema

    doc = parse(query)
    return analyse(schema._schema, doc, operation=select_operation(doc, None), variables=variables,
                   limits=Limits(max_cost=10 ** 9, max_aliases=10 ** 6, max_root_fields=10 ** 6, max_depth=10 ** 6),
                   search_fields=SEARCH_FIELDS).figures.cost


def aliases(field: str, n: int) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(n)) + " }"


STATS_ONE = "knowledgeBaseStatistics { totalArticles usage { searches topSearchTerms { query count } } }"
NESTED = """query($id: ID!) { learningPattern(id: $id) { sourceIncidents { name
  timeline { type source message timestamp } recommendations { title reasoning } } } }"""


# --- the measure itself --------------------------------------------------------------------------

def test_every_list_of_objects_has_a_bound_and_every_statistics_field_a_scan_cost():
    """A new list field (or statistics field) cannot slip in costed by a guess."""
    from schema.limits import LIST_MAXIMUMS, SCAN_COSTS, SIZE_ARGUMENTS
    from schema.schema import schema

    unbounded, unscanned = [], []
    for type_ in schema._schema.type_map.values():
        if type_.name.startswith("__") or not isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType)):
            continue
        for name, field in type_.fields.items():
            target = get_named_type(field.type)
            if target.name.endswith("Statistics") and (type_.name, name) not in SCAN_COSTS:
                unscanned.append(f"{type_.name}.{name}")
            if not is_list_type(get_nullable_type(field.type)) or \
                    not isinstance(target, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)):
                continue
            sized = any(a in SIZE_ARGUMENTS for a in field.args)
            page = name == "results" and type_.name.endswith("Paginated")
            if not (sized or page or (type_.name, name) in LIST_MAXIMUMS):
                unbounded.append(f"{type_.name}.{name}")
    assert not unbounded, f"lists of objects without a declared maximum (schema/limits.py): {unbounded}"
    assert not unscanned, f"statistics fields without a scan cost (schema/limits.py SCAN_COSTS): {unscanned}"
    assert {n for t, n in SCAN_COSTS if t == "Query"} >= {
        "knowledgeBaseStatistics", "postmortemStatistics", "recommendationStatistics", "learningPatternStatistics"}


def _bound(model, field: str, kind: str) -> int:
    return next(getattr(m, kind) for m in model.model_fields[field].metadata if hasattr(m, kind))


def test_declared_maxima_are_what_the_models_and_resolvers_enforce():
    from app.articles import stats
    from app.articles.models import SearchInput
    from app.patterns.models import PatternContent, PatternUpdate
    from app.postmortems.models import ITEMS_MAX, PostmortemContent
    from app.recommendations import service as recommendations
    from app.recommendations.models import GenerateRequest
    from app.settings import Settings
    from schema.app import limits_from
    from schema.limits import LIST_MAXIMUMS as M

    for model in (PatternContent, PatternUpdate):
        assert _bound(model, "source_incidents", "max_length") == M["LearningPattern", "sourceIncidents"]
        assert _bound(model, "source_postmortems", "max_length") == M["LearningPattern", "sourcePostmortems"]
    assert ITEMS_MAX == _bound(PostmortemContent, "action_items", "max_length") == M["Postmortem", "actionItems"]
    assert _bound(PostmortemContent, "reviewers", "max_length") == M["Postmortem", "reviewers"]
    assert _bound(GenerateRequest, "max_recommendations", "le") == M["GeneratedRecommendations", "recommendations"]
    assert _bound(SearchInput, "limit", "le") == M["KnowledgeSearchResult", "results"]
    assert recommendations.MAX_PER_INCIDENT == M["Incident", "recommendations"]
    assert stats.TOP == M["KnowledgeBaseStatistics", "mostViewed"] == M["KnowledgeBaseStatistics", "bestRated"]
    assert stats.TOP_TERMS == M["KnowledgeBaseUsage", "topSearchTerms"] == M["KnowledgeBaseUsage", "topZeroResultTerms"]
    limits = limits_from(Settings(max_page_size=70, max_events_per_incident=321))
    assert (limits.max_list_size, limits.max_timeline_events) == (70, 321)


def test_lists_cost_their_real_bound_and_statistics_what_they_scan():
    from schema.limits import COLLECTION_SCAN, SOURCES_MAX

    # a list the document does not size costs the most its resolver returns (was 20)
    assert cost('{ learningPattern(id: "x") { sourceIncidents { id } } }') == 1 + 1 + SOURCES_MAX
    assert cost(NESTED) > 100_000
    # a size stated in the document is used, never above the field's maximum
    assert cost('{ incident(name: "x") { recommendations(limit: 5) { id } } }') == 1 + 1 + 5
    assert cost('{ incident(name: "x") { recommendations(limit: 5000) { id } } }') == 1 + 1 + 50
    # a page's size sizes its results; unreadable sizes are taken as the maximum
    assert cost("{ incidents(pageSize: 7) { results { id } } }") == 1 + 1 + 7
    assert cost("{ incidents(pageSize: 0) { results { id } } }") == 1 + 1 + 100
    assert cost('{ incidentTimeline(name: "x", limit: 0) { events { message } } }') == 1 + 1 + 5000
    # statistics: their collections, once per alias
    one = cost("{ " + STATS_ONE + " }")
    assert one > 2 * COLLECTION_SCAN
    assert cost(aliases(STATS_ONE, 30)) == 30 * one
    assert cost("{ postmortemStatistics { totalPostmortems } }") == COLLECTION_SCAN + 2


def test_the_measure_stays_linear_with_fragments_over_bounded_lists():
    """Fragments are still measured once: a fan-out through lists with large maxima costs
    milliseconds to refuse (and the figure does not overflow anything)."""
    frags = [f"fragment F{i} on Incident {{ recommendations {{ incident {{ ...F{i + 1} ...F{i + 1} }} }} }}"
             for i in range(25)]
    frags.append("fragment F25 on Incident { id }")
    doc = '{ learningPattern(id: "x") { sourceIncidents { ...F0 } } } ' + " ".join(frags)
    from schema.limits import LimitExceeded, Limits, analyse, select_operation
    from schema.schema import SEARCH_FIELDS, schema

    parsed = parse(doc)
    started = time.perf_counter()
    with pytest.raises(LimitExceeded) as refused:
        analyse(schema._schema, parsed, operation=select_operation(parsed, None), variables=None,
                limits=Limits(max_depth=100, max_cost=10_000), search_fields=SEARCH_FIELDS)
    assert time.perf_counter() - started < 0.5
    assert refused.value.code == "QUERY_TOO_COSTLY" and refused.value.details["value"] > 10 ** 30


# --- 1. statistics: costed by what they scan, shared between aliases ---------------------------

@pytest.fixture
async def usage_log(bk, tokens):
    """20,000 searches (and views that follow a third of them) in the usage log, removed afterwards."""
    marker = unique("cost")
    people = [tokens[r + "_user"] for r in ("admin", "editor", "viewer")]
    rnd = random.Random(15)
    events = []
    for i in range(20_000):
        user, sid = rnd.choice(people), str(uuid.uuid4())
        found = rnd.choice([0, 0, 3, 10, 20])
        events.append({"_id": sid, "kind": "article.search", "user_id": user.id, "clearance": user.clearance.value,
                       "role": user.role.value, "subject": None, "query": f"term {rnd.randrange(300)}",
                       "result_count": found, "seeded": marker})
        if found and rnd.random() < 0.3:
            viewer = user if rnd.random() < 0.8 else rnd.choice(people)  # someone else's click counts for nothing
            events.append({"_id": str(uuid.uuid4()), "kind": "article.view", "user_id": viewer.id,
                           "clearance": viewer.clearance.value, "role": viewer.role.value, "subject": "x",
                           "search_id": sid, "seeded": marker})
    from app.timefmt import utcnow

    now = utcnow()
    for e in events:
        e["at"] = now
    await bk.mongo.usage_events.insert_many(events)
    try:
        yield marker
    finally:
        await bk.mongo.usage_events.delete_many({"seeded": marker})


async def test_thirty_aliased_statistics_are_refused_at_once(client, admin, usage_log):
    started = time.perf_counter()
    r = await client.post("/graphql", headers=admin, json={"query": aliases(STATS_ONE, 30)})
    elapsed = time.perf_counter() - started
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY", r.text[:300]
    assert r.json()["errors"][0]["extensions"]["details"]["value"] > 30 * 2000
    assert elapsed < 2.0
    # one is fine, and fast even over 20,000 searches
    started = time.perf_counter()
    r = await client.post("/graphql", headers=admin, json={"query": "{ " + STATS_ONE + " }"})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
    assert r.json()["data"]["knowledgeBaseStatistics"]["usage"]["searches"] >= 20_000
    assert time.perf_counter() - started < 2.0


async def test_a_remembered_measure_is_per_variables(client, admin):
    """A document's measure is remembered by its text and its variables (schema/app.py `_analyse`): the same text
    with variables past the limits is refused every time, between accepted runs of it with small ones."""
    query = "query($n: Int!, $e: Int!) { incidents(pageSize: $n) { results { name timeline(limit: $e) { id } } } }"
    for _ in range(2):
        for n, e, ok in ((2, 1, True), (100, 1000, False), (2, 1, True), (100, 1000, False)):
            r = await client.post("/graphql", headers=admin, json={"query": query, "variables": {"n": n, "e": e}})
            if ok:
                assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
            else:
                assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY", r.text[:300]
    # a value of another JSON type is another key, and is refused by validation as before
    r = await client.post("/graphql", headers=admin, json={"query": query, "variables": {"n": "2", "e": 1}})
    assert r.status_code == 200 and r.json()["errors"], r.text[:300]


@pytest.mark.parametrize("field", ["knowledgeBaseStatistics { totalArticles }", "postmortemStatistics { totalPostmortems }",
                                   "recommendationStatistics { totalRecommendations }",
                                   "learningPatternStatistics { totalPatterns }"])
async def test_every_statistics_field_is_costed_by_its_scans(client, admin, field):
    r = await client.post("/graphql", headers=admin, json={"query": aliases(field, 11)})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY", r.text[:300]


async def test_a_dashboard_of_every_statistics_field_still_runs(client, admin):
    r = await client.post("/graphql", headers=admin, json={"query": """{ knowledgeBaseStatistics { totalArticles
        mostViewed { slug } usage { searches topSearchTerms { query count } } } postmortemStatistics { totalPostmortems }
        recommendationStatistics { totalRecommendations } learningPatternStatistics { totalPatterns } }"""})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]


async def test_aliases_of_one_statistics_field_compute_it_once(client, admin, monkeypatch):
    from app.articles import stats

    calls = []
    compute = stats._compute

    async def counted(bk, *, user):
        calls.append(user.id)
        return await compute(bk, user=user)

    monkeypatch.setattr(stats, "_compute", counted)
    r = await client.post("/graphql", headers=admin, json={"query": aliases(STATS_ONE, 4)})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
    answers = list(r.json()["data"].values())
    assert len(calls) == 1 and all(a == answers[0] for a in answers)
    # a later request computes afresh (no cache unless IKL_STATISTICS_CACHE_SECONDS is set)
    await client.post("/graphql", headers=admin, json={"query": "{ " + STATS_ONE + " }"})
    assert len(calls) == 2


async def test_clicks_are_counted_as_before_over_a_large_log(client, admin, bk, usage_log):
    """The click-through count (one grouping pass now, one lookup per search before) is still: searches
    with results whose own author then opened an article with their search_id."""
    searches, views = {}, set()
    async for e in bk.mongo.usage_events.find({"kind": {"$in": ["article.search", "article.view"]}}):
        if e["kind"] == "article.search" and (e.get("result_count") or 0) > 0:
            searches[e["_id"]] = e["user_id"]
        elif e["kind"] == "article.view" and isinstance(e.get("search_id"), str):
            views.add((e["search_id"], e["user_id"]))
    expected = sum(1 for sid, uid in searches.items() if (sid, uid) in views)
    got = (await client.get(ARTICLES + "statistics/", headers=admin)).json()["usage"]
    assert got["searches_with_click"] == expected and expected > 1000


async def test_a_short_shared_cache_serves_readers_of_the_same_clearance(bk, tokens, monkeypatch):
    from app.articles import stats

    calls = []
    compute = stats._compute

    async def counted(bk_, *, user):
        calls.append(user.id)
        return await compute(bk_, user=user)

    monkeypatch.setattr(stats, "_compute", counted)
    monkeypatch.setattr(bk.settings, "statistics_cache_seconds", 30.0)
    monkeypatch.setattr(stats, "_cached", {})
    admin = tokens["admin_user"]
    first = await stats.statistics(bk, user=admin)
    first["total_articles"] = -1  # a caller changing its copy changes nobody else's
    again = await stats.statistics(bk, user=admin)
    assert len(calls) == 1 and again["total_articles"] >= 0
    await stats.statistics(bk, user=tokens["viewer_user"])  # other filters: its own computation
    assert len(calls) == 2


# --- 2. lists costed by their real bound; responses capped ---------------------------------------

@pytest.fixture
async def big_pattern(client, bk, editor):
    """A learning pattern with 1,000 source incidents of 50 events each (the model's cap), and one whose
    stored list holds 1,500 (a merge of two full ones); removed afterwards."""
    r = await client.post("/api/v1/incidents/", headers=editor, json={"title": unique("wide"), "timeline": [
        {"type": "Comment", "source": "cost-test", "message": f"step {i:02d} " + "x" * 80,
         "timestamp": f"2026-01-01T00:{i:02d}:00Z"} for i in range(50)]})
    assert r.status_code == 201, r.text
    base = await bk.mongo.incidents.find_one({"name": r.json()["name"]})
    marker = unique("costinc")
    copies = []
    for i in range(1_499):
        d = copy.deepcopy(base)
        d.update(_id=str(uuid.uuid4()), name=f"{marker}-{i:04d}")
        copies.append(d)
    await bk.mongo.incidents.insert_many(copies)
    ids = [base["_id"], *(d["_id"] for d in copies)]
    from app.timefmt import utcnow

    now = utcnow()
    patterns = [{"_id": unique("pat"), "name": unique("wide pattern"), "pattern_type": "ROOT_CAUSE", "description": "",
                 "source_incidents": ids[:n], "source_postmortems": [], "frequency": n, "success_rate": 0.0,
                 "confidence_score": 0.0, "data_classification": "INTERNAL", "history": [], "created_at": now,
                 "updated_at": now} for n in (1000, 1500)]
    await bk.mongo.learning_patterns.insert_many(patterns)
    try:
        yield [p["_id"] for p in patterns]
    finally:
        await bk.mongo.learning_patterns.delete_many({"_id": {"$in": [p["_id"] for p in patterns]}})
        await bk.mongo.incidents.delete_many({"_id": {"$in": ids}})


async def test_nested_lists_are_costed_by_what_the_data_can_hold(client, viewer, big_pattern):
    full, merged = big_pattern
    r = await client.post("/graphql", headers=viewer, json={"query": NESTED, "variables": {"id": full}})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY", \
        f"{r.status_code}: {len(r.content)} bytes"
    # what the measure counts on is what comes back: 1,000 at most, even when more are stored
    q = "query($id: ID!) { learningPattern(id: $id) { sourceIncidents { name } } }"
    for pid in (full, merged):
        r = await client.post("/graphql", headers=viewer, json={"query": q, "variables": {"id": pid}})
        assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
        assert len(r.json()["data"]["learningPattern"]["sourceIncidents"]) == 1000
    # stating smaller sizes below a bounded list keeps it cheap enough to run
    small = """query($id: ID!) { learningPattern(id: $id) { sourceIncidents { name timeline(limit: 2) { message } } } }"""
    r = await client.post("/graphql", headers=viewer, json={"query": small, "variables": {"id": full}})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]


async def test_a_mining_runs_patterns_stop_at_the_bound(client, bk, admin):
    from app.timefmt import utcnow
    from schema.limits import RUN_PATTERNS_MAX

    now = utcnow()
    run = {"_id": str(uuid.uuid4()), "status": "COMPLETED", "running": False, "trigger": "command", "days": 30,
           "min_frequency": 3, "requested_by": None, "data_classification": "INTERNAL", "started_at": now,
           "completed_at": now, "updated_at": now, "counts": {"created": RUN_PATTERNS_MAX + 50},
           "patterns": [{"pattern_id": None, "action": "created", "pattern_type": "ROOT_CAUSE", "name": f"p{i}",
                         "frequency": 3, "confidence_score": 0.5} for i in range(RUN_PATTERNS_MAX + 50)]}
    await bk.mongo.pattern_mining_runs.insert_one(run)
    try:
        r = await client.post("/graphql", headers=admin, json={
            "query": "query($id: ID!) { patternMiningRun(id: $id) { counts patterns { name } } }",
            "variables": {"id": run["_id"]}})
        assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
        assert len(r.json()["data"]["patternMiningRun"]["patterns"]) == RUN_PATTERNS_MAX
    finally:
        await bk.mongo.pattern_mining_runs.delete_one({"_id": run["_id"]})


@pytest.fixture(scope="module")
async def small_responses(stack, bk):
    """An app whose responses may be at most 8 KB, beside the suite's own."""
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(environment="test", outbox_sweep_interval=0, mongodb_db="ikl_test",
                              index_prefix="test", graphql_max_response_bytes=8_000))
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://small") as c:
        yield c


async def test_a_response_larger_than_the_cap_is_an_error_not_a_body(small_responses, client, editor, viewer):
    for _ in range(4):  # enough incidents on a page of 100 for well over 8 KB
        await client.post("/api/v1/incidents/", headers=editor, json={"title": unique("big"),
                                                                       "description": "d" * 3000})
    q = "{ incidents(pageSize: 100) { results { id name title description } } }"
    r = await small_responses.post("/graphql", headers=viewer, json={"query": q})
    assert r.status_code == 200 and len(r.content) < 2000, (r.status_code, len(r.content))
    body = r.json()
    assert body["data"] is None and code_of(r) == "RESPONSE_TOO_LARGE"
    details = body["errors"][0]["extensions"]["details"]
    assert details["limit"] == "response_bytes" and details["max"] == 8_000 and details["value"] > 8_000
    # the same document on the suite's app (4 MB) answers
    r = await client.post("/graphql", headers=viewer, json={"query": q})
    assert r.status_code == 200 and r.json()["data"]["incidents"]["results"]
    # a small one passes the small cap; a mutation that ran says so
    r = await small_responses.post("/graphql", headers=viewer, json={"query": "{ incidents(pageSize: 1) { totalCount } }"})
    assert r.status_code == 200 and "errors" not in r.json()
    title = unique("ran")
    r = await small_responses.post("/graphql", headers=editor, json={"query": 'mutation { createIncident(input: {title: "%s", '
                                   'description: "%s"}) { ... on Incident { description description2: description '
                                   'd3: description d4: description d5: description d6: description d7: description } } }'
                                   % (title, "y" * 3000)})
    assert code_of(r) == "RESPONSE_TOO_LARGE" and "has run" in r.json()["errors"][0]["message"]


def test_the_default_cap_is_a_few_megabytes():
    from app.settings import Settings

    assert 2 * 2 ** 20 <= Settings().graphql_max_response_bytes <= 4 * 2 ** 20


async def test_statistics_and_the_response_cap_keep_the_api_answering(client, admin, usage_log):
    """Many concurrent statistics requests share computations; /healthz keeps answering meanwhile."""
    started = time.perf_counter()
    requests = [asyncio.create_task(client.post("/graphql", headers=admin, json={"query": aliases(STATS_ONE, 4)}))
                for _ in range(5)]
    health = await client.get("/healthz")
    done = await asyncio.gather(*requests)
    assert health.status_code == 200
    assert all(r.status_code == 200 and "errors" not in r.json() for r in done), done[0].text[:300]
    assert time.perf_counter() - started < 5.0
