"""Every REST path comes from a resource declaration (app/http/resources.py): both spellings, no redirects,
a 405 with `Allow` for any other method on every path (named views included), the role checked before the
body is read."""

from __future__ import annotations

import pytest

from app.http.resources import EVERY_METHOD, allowed
from app.main import RESOURCES

from tests.conftest import unique


def concrete(path: str) -> str:
    """A declared path with its parameters filled in (an item that does not exist)."""
    return path.replace("{name}", "INC-00000000-000").replace("{slug}", "no-such-article") \
        .replace("{id}", "00000000-0000-0000-0000-000000000000").replace("{item_id}", "nope")


PATHS = [(path, methods) for resource in RESOURCES for path, methods, _ in resource.paths()]


@pytest.mark.parametrize("path,methods", PATHS, ids=[p for p, _ in PATHS])
async def test_every_other_method_is_a_405_naming_the_allowed_ones_on_both_spellings(client, admin, path, methods):
    refused = [m for m in EVERY_METHOD if m not in allowed(methods)]
    for spelling in (concrete(path), concrete(path).rstrip("/")):
        for method in refused:
            r = await client.request(method, spelling, headers=admin)
            assert r.status_code == 405, (method, spelling, r.status_code, r.text)
            assert r.headers["allow"] == ", ".join(allowed(methods)), r.headers
            assert method == "HEAD" or r.json() == {"error": f'Method "{method}" not allowed.', "details": {"allowed": allowed(methods)},
                                "code": "METHOD_NOT_ALLOWED"}


@pytest.mark.parametrize("path,methods", PATHS, ids=[p for p, _ in PATHS])
async def test_no_path_redirects_and_both_spellings_answer_alike(client, admin, path, methods):
    if "GET" not in methods:
        pytest.skip("no GET to compare")
    if path.endswith("/events/") and "postmortem-generations" in path:
        pytest.skip("an event stream (its 404 is compared in the postmortem tests)")
    with_slash = await client.get(concrete(path), headers=admin)
    without = await client.get(concrete(path).rstrip("/"), headers=admin)
    assert with_slash.status_code == without.status_code != 307, (path, with_slash.status_code, without.status_code)
    if with_slash.status_code != 200:
        assert with_slash.json() == without.json()


async def test_named_views_are_never_taken_for_an_item(client, admin):
    """Before: PUT on …/statistics/ fell through to the detail route (404 or 403), not a 405."""
    for path in ("/api/knowledge/recommendations/statistics/", "/api/knowledge/postmortems/overdue/",
                 "/api/knowledge/knowledge-articles/popular/", "/api/knowledge/learning-patterns/mining_runs/"):
        r = await client.put(path, headers=admin, json={})
        assert r.status_code == 405 and "GET" in r.headers["allow"], (path, r.status_code, r.text)


async def test_writes_without_the_trailing_slash(client, editor):
    r = await client.post("/api/v1/incidents", headers=editor, json={"title": unique("No slash")})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    r = await client.patch(f"/api/v1/incidents/{name}", headers=editor, json={"severity": "HIGH"})
    assert r.status_code == 200 and r.json()["severity"] == "HIGH", r.text


async def test_the_role_is_checked_before_the_body(client, viewer):
    """A viewer's write is a 403 whatever its body: nothing about the body is answered to who may not write."""
    for path, body in (("/api/knowledge/postmortems/", {"unknown": 1}), ("/api/v1/incidents/", {"title": 42}),
                       ("/api/knowledge/learning-patterns/", "not an object"),
                       ("/api/knowledge/recommendations/generate_for_incident/", {})):
        r = await client.post(path, headers=viewer, json=body)
        assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED", (path, r.text)


async def test_graphql_mutations_check_the_declared_role_before_the_input(client, viewer):
    """The mutation wrapper (schema/errors.py `typed_errors(role=…)`): a viewer's mutation with an invalid
    input is refused as not permitted, never answered about its input."""
    from tests.incidents.test_graphql import gql

    bad = {"title": "x" * 5000, "namespace": "Not A Namespace"}
    out = await gql(client, viewer, """mutation($input: CreateIncidentInput!) { createIncident(input: $input) {
      __typename ... on UserError { code } } }""", input=bad)
    assert out["data"]["createIncident"] == {"__typename": "PermissionDeniedError", "code": "PERMISSION_DENIED"}
    out = await gql(client, viewer, """mutation { startPatternMining(days: -5) { __typename } }""")
    assert out["data"]["startPatternMining"]["__typename"] == "PermissionDeniedError"


async def test_one_event_object_is_appended_like_a_list_of_one(client, editor):
    r = await client.post("/api/v1/incidents/", headers=editor, json={"title": unique("One event")})
    name = r.json()["name"]
    one = {"type": "Comment", "source": "alice", "message": "Looking at the pool"}
    r = await client.post(f"/api/v1/incidents/{name}/events/", headers=editor, json=one)
    assert r.status_code == 201 and r.json()["appended"] == 1, r.text
    r = await client.post(f"/api/v1/incidents/{name}/events", headers=editor, json={"events": [one, one]})
    assert r.status_code == 201 and r.json()["appended"] == 2, r.text
    r = await client.post(f"/api/v1/incidents/{name}/events/", headers=editor, json={"type": "Boom", "source": "a",
                                                                                     "message": "m"})
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", r.text


async def test_recommendations_are_listed_by_incident_name(client, editor):
    r = await client.post("/api/v1/incidents/", headers=editor, json={"title": unique("Named recs"),
                                                                      "severity": "LOW"})
    inc = r.json()
    r = await client.post("/api/knowledge/recommendations/generate_for_incident/", headers=editor,
                          json={"incident_id": inc["name"], "recommendation_types": ["KNOWLEDGE_ARTICLE"],
                                "min_confidence": 0.0})
    assert r.status_code == 200, r.text  # the incident named by its name, not only its id
    by_name = (await client.get("/api/knowledge/recommendations/", headers=editor,
                                params={"incident": inc["name"]})).json()
    by_id = (await client.get("/api/knowledge/recommendations/", headers=editor, params={"incident": inc["id"]})).json()
    assert by_name["count"] == by_id["count"] == len(r.json()["recommendations"])


async def test_graphql_lists_take_the_rest_lists_filters(client, admin, editor):
    """articlesDueForReview, myBookmarks and overduePostmortems take the list filters and `search` their REST
    routes take (before: only paging and ordering)."""
    from tests.incidents.test_graphql import gql

    tag = unique("gqlfilt").replace("-", "")
    r = await client.post("/api/knowledge/knowledge-articles/", headers=editor, json={
        "title": f"Runbook {tag}", "content": "steps", "article_type": "RUNBOOK", "category": "Database",
        "status": "PUBLISHED", "next_review_due": "2020-01-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    slug = r.json()["slug"]
    assert (await client.post(f"/api/knowledge/knowledge-articles/{slug}/bookmark/", headers=editor)).status_code == 201
    out = await gql(client, editor, """query($s: String!) {
      due: articlesDueForReview(search: $s, articleType: [RUNBOOK], category: "Database") { totalCount }
      none: articlesDueForReview(search: $s, articleType: [FAQ]) { totalCount }
      mine: myBookmarks(search: $s, category: "Database") { totalCount }
      overdue: overduePostmortems(search: $s, severity: [HIGH]) { totalCount } }""", s=tag)
    assert "errors" not in out, out
    data = out["data"]
    assert data["due"]["totalCount"] == 1 and data["none"]["totalCount"] == 0 and data["mine"]["totalCount"] == 1
    assert data["overdue"]["totalCount"] == 0
