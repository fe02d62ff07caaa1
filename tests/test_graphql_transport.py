"""/graphql as a hostile caller sees it: no operation without a user, limits that fragments and
aliases cannot multiply, rate limits per root field, request errors in the GraphQL shape."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.conftest import fresh_address, unique


def code_of(r: httpx.Response) -> str:
    return r.json()["errors"][0]["extensions"]["code"]


@pytest.fixture(scope="module")
async def dev_client(stack, bk):
    """An app in development mode (GraphiQL on), beside the suite's own."""
    from app.main import create_app
    from app.settings import Settings

    dev = create_app(Settings(environment="development", outbox_sweep_interval=0, mongodb_db="ikl_test",
                              index_prefix="test"))
    async with dev.router.lifespan_context(dev), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=dev), base_url="http://dev") as c:
        yield c


# --- 1. every operation needs a user -----------------------------------------------------------

async def test_only_the_static_ide_page_is_served_without_a_token(dev_client):
    html = {"Accept": "text/html"}
    assert (await dev_client.get("/graphql", headers=html)).status_code == 200
    for params in ({"query": "{ incidents { totalCount } }"}, {"query": ""}, {"query": "{ incidnts }"},
                   {"query": "mutation { createIncident(input: {title: \"x\"}) { __typename } }"},
                   {"operationName": "x"}):
        r = await dev_client.get("/graphql", params=params, headers=html)
        assert r.status_code == 401, (params, r.text)
        assert code_of(r) == "NOT_AUTHENTICATED"
        assert "Did you mean" not in r.text and "NoneType" not in r.text
    r = await dev_client.post("/graphql", headers=html, json={"query": "{ __typename }"})
    assert r.status_code == 401


async def test_a_mutation_over_get_is_405_for_a_user_and_401_for_anyone_else(client, editor):
    q = {"query": 'mutation { createIncident(input: {title: "via GET"}) { __typename } }'}
    assert (await client.get("/graphql", params=q)).status_code == 401
    r = await client.get("/graphql", params=q, headers=editor)
    assert r.status_code == 405 and code_of(r) == "METHOD_NOT_ALLOWED" and r.headers["allow"] == "POST"
    r = await client.get("/graphql", params={"query": "{ incidents { totalCount } }"}, headers=editor)
    assert r.status_code == 200 and r.json()["data"]["incidents"]["totalCount"] >= 0


# --- 2. one request cannot stop the API --------------------------------------------------------

def fan_out(levels: int) -> str:
    frags = [f"fragment F{i} on Incident {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    frags.append(f"fragment F{levels} on Incident {{ id }}")
    return '{ incident(name: "x") { ...F0 } } ' + " ".join(frags)


async def test_fragment_fan_out_is_rejected_at_once_and_the_api_keeps_answering(client, viewer):
    doc = fan_out(30)
    assert len(doc) < 1400
    started = time.perf_counter()
    request = asyncio.create_task(client.post("/graphql", headers=viewer, json={"query": doc}))
    health = await client.get("/healthz")
    r = await request
    assert health.status_code == 200
    assert r.status_code == 400 and code_of(r) in ("QUERY_TOO_COMPLEX", "QUERY_TOO_COSTLY")
    # a chain of spreads (no fan-out) is fine
    chain = "{ incidents { results { ...C0 } } } " + " ".join(
        f"fragment C{i} on Incident {{ id ...C{i + 1} }}" for i in range(8)) + " fragment C8 on Incident { id }"
    r = await client.post("/graphql", headers=viewer, json={"query": chain})
    assert r.status_code == 200 and "errors" not in r.json()
    assert time.perf_counter() - started < 60  # generous: the old limiters took minutes


async def test_fragment_cycles_are_refused_before_validation(client, viewer):
    doc = '{ incident(name: "x") { ...A } } fragment A on Incident { ...B } fragment B on Incident { ...A }'
    r = await client.post("/graphql", headers=viewer, json={"query": doc})
    assert r.status_code == 400 and code_of(r) == "GRAPHQL_VALIDATION_FAILED"


async def test_cost_limit_counts_page_sizes_and_aliases(client, viewer):
    one = "incidents(pageSize: 100) { results { timeline(limit: 20) { type source message timestamp } } }"
    r = await client.post("/graphql", headers=viewer, json={"query": "{ " + " ".join(
        f"a{i}: {one}" for i in range(30)) + " }"})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY"
    r = await client.post("/graphql", headers=viewer, json={"query": "{ " + one + " }"})
    assert r.status_code == 200 and "errors" not in r.json()
    # a page size given as a variable is measured with its value
    q = "query($n: Int!) { " + " ".join(f"a{i}: incidents(pageSize: $n) {{ results {{ timeline {{ message }} }} }}"
                                        for i in range(5)) + " }"
    r = await client.post("/graphql", headers=viewer, json={"query": q, "variables": {"n": 100}})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY"
    r = await client.post("/graphql", headers=viewer, json={"query": q, "variables": {"n": 5}})
    assert r.status_code == 200, r.text


async def test_repeated_fields_and_root_fields_count(client, viewer):
    r = await client.post("/graphql", headers=viewer, json={"query": "{ " + "__typename " * 450 + "}"})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COMPLEX"
    r = await client.post("/graphql", headers=viewer, json={
        "query": '{ incident(name: "x") { ' + "id " * 200 + "} }"})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COMPLEX"
    # 24 aliases, and 4 unaliased copies brought twice by a fragment: 32 root fields
    roots = "{ " + " ".join(f"i{i}: incidents(pageSize: 1) {{ totalCount }}" for i in range(24)) + " ...R ...R } " \
            "fragment R on Query { " + "incidents(pageSize: 1) { totalCount } " * 4 + "}"
    r = await client.post("/graphql", headers=viewer, json={"query": roots})
    assert r.status_code == 400 and code_of(r) == "TOO_MANY_ROOT_FIELDS"
    assert r.json()["errors"][0]["extensions"]["details"]["value"] == 32


async def test_introspection_works_but_cannot_nest_without_bound(client, viewer):
    from graphql import get_introspection_query

    r = await client.post("/graphql", headers=viewer, json={"query": get_introspection_query(descriptions=True)})
    assert r.status_code == 200 and r.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    deep = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }"
    r = await client.post("/graphql", headers=viewer, json={"query": deep})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COMPLEX"


async def test_body_is_capped_and_request_errors_use_the_graphql_shape(client, viewer, bk):
    big = '{ incidents(search: "' + "x" * (bk.settings.max_body_bytes + 10) + '") { totalCount } }'
    r = await client.post("/graphql", headers=viewer, json={"query": big})
    assert r.status_code == 413 and code_of(r) == "BODY_TOO_LARGE"
    for body in (b"null", b'"str"', b"1", b"[]"):
        r = await client.post("/graphql", headers={**viewer, "Content-Type": "application/json"}, content=body)
        assert r.status_code == 400 and code_of(r) == "INVALID_BODY", body
    r = await client.post("/graphql", headers={**viewer, "Content-Type": "text/plain"},
                          content=b'{"query": "{ __typename }"}')
    assert r.status_code == 415 and code_of(r) == "UNSUPPORTED_MEDIA_TYPE"
    r = await client.post("/graphql", headers={**viewer, "Content-Type": "application/json"}, content=b"{nope")
    assert r.status_code == 400 and code_of(r) == "MALFORMED_JSON"
    r = await client.post("/graphql", headers=viewer, json={"query": "{ __typename }", "variables": [1]})
    assert r.status_code == 400 and code_of(r) == "INVALID_VARIABLES"
    r = await client.post("/graphql", headers=viewer, json={"query": "{ incidents { "})
    assert r.status_code == 400 and code_of(r) == "GRAPHQL_PARSE_FAILED"


async def test_timelines_of_a_page_are_fetched_in_one_query(client, viewer, editor, bk):
    ns = unique("tl").lower()
    for i in range(5):
        r = await client.post("/api/v1/incidents/", headers=editor, json={
            "title": f"batched {i}", "namespace": ns,
            "timeline": [{"type": "Detection", "source": "t", "message": f"e{i}"}]})
        assert r.status_code == 201
    db = bk.mongo
    await db.command("profile", 2)
    since = datetime.now(timezone.utc)
    try:
        r = await client.post("/graphql", headers=viewer, json={"query": """query($ns: String!) {
            incidents(namespace: $ns) { results { name timeline { message } } } }""", "variables": {"ns": ns}})
    finally:
        await db.command("profile", 0)
    results = r.json()["data"]["incidents"]["results"]
    assert sorted(e["message"] for i in results for e in i["timeline"]) == [f"e{i}" for i in range(5)]
    loads = await db["system.profile"].count_documents({"ns": f"{db.name}.incidents", "ts": {"$gte": since},
                                                        "command.aggregate": "incidents",
                                                        "command.pipeline.0.$match._id": {"$exists": True}})
    assert loads == 1


# --- 3. rate limits per root field --------------------------------------------------------------

@pytest.fixture
async def limited(bk):
    from app.users.models import Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique("rlg"), role=Role.EDITOR))
    headers = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
    saved = (bk.settings.rate_limit_read, bk.settings.rate_limit_write, bk.settings.rate_limit_search)
    bk.settings.rate_limit_read, bk.settings.rate_limit_write, bk.settings.rate_limit_search = 20, 5, 3
    yield headers
    bk.settings.rate_limit_read, bk.settings.rate_limit_write, bk.settings.rate_limit_search = saved


async def test_each_aliased_mutation_is_a_write(client, limited, bk):
    title = unique("alias-write")
    doc = "mutation { " + " ".join(
        f'm{i}: createIncident(input: {{title: "{title}"}}) {{ __typename }}' for i in range(6)) + " }"
    r = await client.post("/graphql", headers=limited, json={"query": doc})
    assert r.status_code == 429 and code_of(r) == "RATE_LIMITED"
    assert await bk.mongo.incidents.count_documents({"title": title}) == 0  # refused before execution
    for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"):
        assert h in r.headers
    assert r.headers["x-ratelimit-limit"] == "5"
    single = f'mutation {{ createIncident(input: {{title: "{title}"}}) {{ __typename }} }}'
    codes = [(await client.post("/graphql", headers=limited, json={"query": single})).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert await bk.mongo.incidents.count_documents({"title": title}) == 5
    # writes did not spend reads
    r = await client.post("/graphql", headers=limited, json={"query": "{ incidents(pageSize: 1) { totalCount } }"})
    assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "20"
    assert int(r.headers["x-ratelimit-remaining"]) == 19


async def test_a_search_inside_a_fragment_is_a_search(client, limited):
    doc = 'fragment S on Query { s1: searchKnowledgeBase(input: {query: "db"}) { totalCount } ' \
          's2: searchKnowledgeBase(input: {query: "db"}) { totalCount } } { ...S ...S }'
    r = await client.post("/graphql", headers=limited, json={"query": doc})
    assert r.status_code == 429 and r.json()["errors"][0]["extensions"]["details"]["kind"] == "search"
    r = await client.post("/graphql", headers=limited, json={"query": '{ searchKnowledgeBase(input: {query: "db"}) { totalCount } }'})
    assert r.status_code == 200, r.text  # the refused four did not spend the remaining searches


async def test_failed_authentication_is_limited_per_address(app, bk):
    from app.http import ratelimit
    from app.users.models import UserCreate
    from app.users.service import create_user, issue_token

    saved = bk.settings.auth_failures_per_minute
    bk.settings.auth_failures_per_minute = 3
    address = fresh_address()  # an address no other test has failed from
    await bk.redis.delete(*[k async for k in bk.redis.scan_iter(f"ikl:authfail:{address}:*")] or ["-"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 4242))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    try:
        codes = [(await client.get("/api/v1/incidents/", headers={"Authorization": f"Token bad{i}"})).status_code
                 for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        user = await create_user(bk, data=UserCreate(username=unique("af")))
        fresh = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
        r = await client.get("/api/v1/incidents/", headers=fresh)  # no lookup from a blocked address
        assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED" and "retry-after" in r.headers
        r = await client.post("/graphql", headers={"Authorization": "Token bad"}, json={"query": "{ __typename }"})
        assert r.status_code == 429 and code_of(r) == "RATE_LIMITED"
    finally:
        await client.aclose()
        bk.settings.auth_failures_per_minute = saved
        ratelimit._auth_failures.clear()


def test_sizes_inside_input_objects_are_measured():
    from graphql import parse

    from schema.limits import Limits, analyse, select_operation
    from schema.schema import SEARCH_FIELDS, schema

    def cost(q, variables=None):
        doc = parse(q)
        return analyse(schema._schema, doc, operation=select_operation(doc, None), variables=variables,
                       limits=Limits(max_cost=10 ** 9), search_fields=SEARCH_FIELDS).figures.cost

    hits = "{ searchKnowledgeBase(input: {query: \"x\", limit: %s}) { results { article { title } } } }"
    assert cost(hits % 100) > 4 * cost(hits % 20)
    assert cost("{ searchKnowledgeBase(input: {query: \"x\"}) { results { article { title } } } }") == cost(hits % 20)
    by_var = "query($i: KnowledgeSearchInput!) { searchKnowledgeBase(input: $i) { results { article { title } } } }"
    assert cost(by_var, {"i": {"query": "x", "limit": 100}}) == cost(hits % 100)


# --- found by attacking the fixes -------------------------------------------------------------------

async def test_page_sizes_the_measure_cannot_read_are_taken_as_the_largest(client, viewer):
    page = "incidents(pageSize: %s) { results { timeline(limit: 100) { message } } }"
    for doc, variables in (("{ " + " ".join(f"a{i}: {page % 0}" for i in range(30)) + " }", None),
                           ("query($n: Int = 100) { " + " ".join(f"a{i}: {page % '$n'}" for i in range(5)) + " }", None),
                           ("query($n: Int!) { " + " ".join(f"a{i}: {page % '$n'}" for i in range(5)) + " }",
                            {"n": 100.0})):
        r = await client.post("/graphql", headers=viewer, json={"query": doc, "variables": variables})
        assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY", (doc[:60], r.text[:300])
    r = await client.post("/graphql", headers=viewer, json={"query": "{ incidents(pageSize: 0) { totalCount } }"})
    assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"


async def test_timelines_are_sized_by_their_limit(client, viewer, editor):
    r = await client.post("/api/v1/incidents/", headers=editor, json={"title": "long", "timeline": [
        {"type": "Comment", "source": "t", "message": f"m{i:02d}", "timestamp": f"2026-01-01T00:{i:02d}:00Z"}
        for i in range(30)]})
    name = r.json()["name"]
    out = (await client.post("/graphql", headers=viewer, json={"query": """query($n: String!) {
        incident(name: $n) { timeline(limit: 5) { message } } incidentTimeline(name: $n, limit: 3) {
        metadata { eventCount } events { message } } }""", "variables": {"n": name}})).json()["data"]
    assert [e["message"] for e in out["incident"]["timeline"]] == ["m00", "m01", "m02", "m03", "m04"]
    assert out["incidentTimeline"]["metadata"]["eventCount"] == 30 and len(out["incidentTimeline"]["events"]) == 3
    r = await client.post("/graphql", headers=viewer, json={
        "query": "{ incidents(pageSize: 100) { results { timeline(limit: 1000) { message } } } }"})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COSTLY"
    r = await client.post("/graphql", headers=viewer, json={
        "query": "{ incidents(pageSize: 5) { results { timeline(limit: 5) { message } } } }"})
    assert r.status_code == 200 and "errors" not in r.json()


async def test_unknown_and_unused_fragments_and_merged_repeats_are_refused_before_validation(client, viewer):
    for doc in ("{ ...Nope }", "{ __typename } fragment X on Query { __typename }",
                "{ incident(name: \"x\") { ...A ...B } } fragment A on Incident { " + "id " * 6 + "} "
                "fragment B on Incident { " + "id " * 6 + "}"):
        r = await client.post("/graphql", headers=viewer, json={"query": doc})
        assert r.status_code == 400 and code_of(r) in ("GRAPHQL_VALIDATION_FAILED", "QUERY_TOO_COMPLEX"), doc
    r = await client.post("/graphql", headers=viewer, json={"query": "{ a: __schema { queryType { name } } "
                                                                     "b: __schema { queryType { name } } }"})
    assert r.status_code == 400 and code_of(r) == "QUERY_TOO_COMPLEX"


async def test_refused_documents_cost_milliseconds_and_head_never_runs_a_mutation(client, limited, bk):
    before = await client.post("/graphql", headers=limited, json={"query": "{ __typename }"})
    r = await client.post("/graphql", headers=limited, json={"query": "{ ...Nope }"})
    assert r.status_code == 400  # refused by the measure, before the rate limit and validation: costs no unit
    after = await client.post("/graphql", headers=limited, json={"query": "{ __typename }"})
    assert int(before.headers["x-ratelimit-remaining"]) - int(after.headers["x-ratelimit-remaining"]) == 1
    title = unique("head")
    r = await client.request("HEAD", "/graphql", headers={**limited, "Content-Type": "application/json"},
                             content=('{"query": "mutation { createIncident(input: {title: \\"%s\\"}) '
                                      '{ __typename } }"}' % title).encode())
    assert r.status_code in (400, 405)
    assert await bk.mongo.incidents.count_documents({"title": title}) == 0
