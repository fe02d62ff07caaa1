"""Incidents through GraphQL: the same service as REST, typed errors, protections."""

from __future__ import annotations

from tests.conftest import unique


async def gql(client, headers, query: str, expect_status: int = 200, **variables):
    r = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert r.status_code == expect_status, r.text
    return r.json()


CREATE = """mutation($input: CreateIncidentInput!) { createIncident(input: $input) {
  __typename
  ... on Incident { id name namespace severity status timeline { type message severity details } }
  ... on UserError { code message field }
} }"""


async def test_create_query_and_timeline(client, editor, viewer):
    name = unique("INC")
    out = await gql(client, editor, CREATE, input={
        "name": name, "title": "Queue backlog", "severity": "HIGH", "namespace": "production",
        "affectedServices": ["queue"],
        "timeline": [{"type": "DETECTION", "source": "alertmanager", "message": "backlog > 10k", "severity": "HIGH",
                      "timestamp": "2026-03-19T15:20:00Z", "details": {"queue": "orders"}}]})
    inc = out["data"]["createIncident"]
    assert inc["__typename"] == "Incident" and inc["name"] == name and inc["severity"] == "HIGH"
    assert inc["timeline"] == [{"type": "Detection", "message": "backlog > 10k", "severity": "high",
                                "details": {"queue": "orders"}}]
    out = await gql(client, viewer, """query($name: String!) { incidentTimeline(name: $name) {
        apiVersion kind metadata { name namespace eventCount } events { timestamp type source } } }""", name=name)
    tl = out["data"]["incidentTimeline"]
    assert tl["apiVersion"] == "v1" and tl["kind"] == "IncidentTimeline"
    assert tl["metadata"] == {"name": name, "namespace": "production", "eventCount": 1}
    assert tl["events"][0]["timestamp"].startswith("2026-03-19T15:20:00")
    by_id = await gql(client, viewer, "query($id: ID!) { incident(id: $id) { name } }", id=inc["id"])
    assert by_id["data"]["incident"]["name"] == name


async def test_list_with_filters_and_total_count(client, editor, viewer):
    ns = unique("gq").lower()
    for i in range(3):
        await gql(client, editor, CREATE, input={"title": f"gq {i}", "namespace": ns,
                                                 "severity": "CRITICAL" if i else "LOW"})
    out = await gql(client, viewer, """query($ns: String!) {
        incidents(namespace: $ns, severity: [CRITICAL], ordering: "title", pageSize: 1) {
          totalCount page pageSize hasNextPage hasPreviousPage results { title severity } } }""", ns=ns)
    page = out["data"]["incidents"]
    assert page["totalCount"] == 2 and page["hasNextPage"] and not page["hasPreviousPage"]
    assert page["results"] == [{"title": "gq 1", "severity": "CRITICAL"}]
    bad = await gql(client, viewer, '{ incidents(ordering: "-secret") { totalCount } }')
    assert bad["data"] is None and bad["errors"][0]["extensions"]["code"] == "INVALID_ORDERING"


async def test_mutation_failures_are_typed_errors(client, editor, viewer):
    out = await gql(client, viewer, CREATE, input={"title": "nope"})
    assert out["data"]["createIncident"]["__typename"] == "PermissionDeniedError"
    out = await gql(client, editor, CREATE, input={"title": "", "namespace": "BAD NS"})
    err = out["data"]["createIncident"]
    assert err["__typename"] == "ValidationError" and err["code"] == "VALIDATION_ERROR"
    assert err["field"] in ("title", "namespace")
    out = await gql(client, editor, """mutation { resolveIncident(name: "INC-00000000-000", input: {resolution: "x"}) {
        __typename ... on UserError { code } } }""")
    assert out["data"]["resolveIncident"] == {"__typename": "NotFoundError", "code": "INCIDENT_NOT_FOUND"}


async def test_update_add_event_and_resolve(client, editor):
    name = unique("INC")
    await gql(client, editor, CREATE, input={"name": name, "title": "to resolve"})
    out = await gql(client, editor, """mutation($name: String!) {
        updateIncident(name: $name, input: {status: INVESTIGATING, assignee: "bob"}) {
          ... on Incident { status assignee } } }""", name=name)
    assert out["data"]["updateIncident"] == {"status": "INVESTIGATING", "assignee": "bob"}
    out = await gql(client, editor, """mutation($name: String!) {
        addTimelineEvent(name: $name, event: {type: MITIGATION, source: "oncall", message: "scaled up"}) {
          ... on Incident { timeline { type } } } }""", name=name)
    assert [e["type"] for e in out["data"]["addTimelineEvent"]["timeline"]] == ["StatusChange", "Mitigation"]
    out = await gql(client, editor, """mutation($name: String!) {
        resolveIncident(name: $name, input: {resolution: "scaled", rootCause: "undersized"}) {
          ... on Incident { status rootCause resolvedAt } } }""", name=name)
    res = out["data"]["resolveIncident"]
    assert res["status"] == "RESOLVED" and res["rootCause"] == "undersized" and res["resolvedAt"]
    out = await gql(client, editor, """mutation($name: String!) {
        resolveIncident(name: $name, input: {resolution: "again"}) { ... on ConflictError { code } } }""", name=name)
    assert out["data"]["resolveIncident"] == {"code": "ALREADY_RESOLVED"}


async def test_query_errors_carry_codes(client, viewer):
    out = await gql(client, viewer, '{ incident(name: "INC-00000000-000") { id } }')
    assert out["errors"][0]["extensions"]["code"] == "INCIDENT_NOT_FOUND"
    out = await gql(client, viewer, "{ nope }", expect_status=400)
    assert out["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_depth_and_alias_limits(client, viewer):
    deep = "{ incidents { results { " + "timeline { details } " + "} } }"
    assert "errors" not in await gql(client, viewer, deep)
    aliases = "{ " + " ".join(f"a{i}: incidents {{ totalCount }}" for i in range(40)) + " }"
    out = await gql(client, viewer, aliases, expect_status=400)
    assert out["errors"][0]["extensions"]["code"] == "TOO_MANY_ALIASES"
    nested = "{ " + "incidents { " * 12 + "id" + " }" * 12 + " }"
    out = await gql(client, viewer, nested, expect_status=400)
    assert out["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"


async def test_graphql_needs_a_token(client):
    r = await client.post("/graphql", json={"query": "{ incidents { totalCount } }"})
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


async def test_one_voice_with_rest(client, editor, viewer):
    """Same timestamps (UTC with Z), same event source whichever API made the change, same filters."""
    assignee = unique("owner")
    names = []
    for api in ("rest", "graphql"):
        r = await client.post("/api/v1/incidents/", headers=editor, json={
            "title": f"voice {api}", "assignee": assignee,
            "timeline": [{"type": "Detection", "source": "probe", "message": "m",
                          "timestamp": "2026-03-19T16:20:00.123+01:00"}]})
        name = r.json()["name"]
        names.append(name)
        if api == "rest":
            assert (await client.patch(f"/api/v1/incidents/{name}/", headers=editor,
                                       json={"status": "INVESTIGATING"})).status_code == 200
            assert (await client.post(f"/api/v1/incidents/{name}/resolve/", headers=editor,
                                      json={"resolution": "fixed"})).status_code == 200
        else:
            await gql(client, editor, """mutation($n: String!) { updateIncident(name: $n, input: {status: INVESTIGATING})
                { __typename } }""", n=name)
            await gql(client, editor, """mutation($n: String!) { resolveIncident(name: $n, input: {resolution: "fixed"})
                { __typename } }""", n=name)
    sources = []
    for name in names:
        rest = (await client.get(f"/api/v1/incidents/{name}/", headers=viewer)).json()
        out = await gql(client, viewer, """query($n: String!) { incident(name: $n) { createdAt detectedAt
            timeline { timestamp source type details } } incidentTimeline(name: $n) { events { timestamp } } }""", n=name)
        inc = out["data"]["incident"]
        assert inc["createdAt"] == rest["created_at"] and inc["createdAt"].endswith("Z")
        assert inc["timeline"][0]["timestamp"] == "2026-03-19T15:20:00.123000Z"
        assert out["data"]["incidentTimeline"]["events"][0]["timestamp"] == "2026-03-19T15:20:00.123000Z"
        sources.append([(e["type"], e["source"], (e["details"] or {}).get("actor")) for e in inc["timeline"][1:]])
    assert sources[0] == sources[1]
    assert {s for _, s, _ in sources[0]} == {"incident-service"}
    actors = {a for _, _, a in sources[0]}
    assert len(actors) == 1 and actors.pop().startswith("editor-")
    out = await gql(client, viewer, "query($a: String!) { incidents(assignee: $a) { totalCount } }", a=assignee)
    assert out["data"]["incidents"]["totalCount"] == 2
    # a DateTime input with an offset is taken in UTC
    out = await gql(client, editor, """mutation { createIncident(input: {title: "tz", detectedAt: "2026-01-01T01:00:00+01:00"})
        { ... on Incident { detectedAt } } }""")
    assert out["data"]["createIncident"]["detectedAt"] == "2026-01-01T00:00:00Z"
