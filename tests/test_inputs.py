"""Inputs that used to crash (500) or poison stored data: each is a 4xx in the error format and
nothing is written."""

from __future__ import annotations

import json

import pytest

from tests.conftest import unique
from tests.incidents.test_rest import error_shape as rest_error

BASE = "/api/v1/incidents/"


def deep(n: int) -> str:
    return "[" * n + "]" * n


async def test_deep_json_is_refused_everywhere(client, editor):
    body = '{"title": "deep", "tags": ' + deep(10_000) + "}"
    r = await client.post(BASE, headers={**editor, "Content-Type": "application/json"}, content=body)
    rest_error(r, 400, "JSON_TOO_DEEP")
    r = await client.post("/graphql", headers={**editor, "Content-Type": "application/json"},
                          content='{"query": "{ __typename }", "x": ' + deep(10_000) + "}")
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "JSON_TOO_DEEP"
    r = await client.post("/graphql", headers={**editor, "Content-Type": "application/json"},
                          content='{"query": "query($v: JSON) { __typename }", "variables": {"v": ' + deep(10_000) + "}}")
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "JSON_TOO_DEEP"
    r = await client.get("/graphql", headers=editor, params={"query": "{ __typename }", "variables": deep(10_000)})
    assert r.status_code == 400


@pytest.mark.parametrize("details, code", [
    ('{"n": 9223372036854775808}', "INVALID_NUMBER"),
    ('{"n": -9223372036854775809}', "INVALID_NUMBER"),
    ('{"a\\u0000b": 1}', "INVALID_KEY"),
    ('{"$where": 1}', "INVALID_KEY"),
    ('{"n": NaN}', "INVALID_NUMBER"),
    ('{"n": Infinity}', "INVALID_NUMBER"),
    ('{"n": 1e400}', "INVALID_NUMBER"),
    ('{"a": 1, "a": 2}', "DUPLICATE_KEY"),
])
async def test_unstorable_json_in_a_body_is_refused(client, editor, bk, details, code):
    name = unique("poison")
    body = '{"title": "poison", "name": "%s", "timeline": [{"type": "Comment", "source": "t", "message": "m", ' \
           '"details": %s}]}' % (name, details)
    r = await client.post(BASE, headers={**editor, "Content-Type": "application/json"}, content=body)
    rest_error(r, 400, code)
    assert await bk.mongo.incidents.count_documents({"name": name}) == 0


async def test_free_form_json_is_checked_when_it_arrives_as_a_graphql_literal(client, editor, bk):
    title = unique("gql-poison")
    for literal in ("{n: 99999999999999999999}", "{a: " * 12 + "1" + "}" * 12, "{n: 1e400}"):
        q = 'mutation { createIncident(input: {title: "%s", timeline: [{type: COMMENT, source: "t", message: "m", ' \
            'details: %s}]}) { __typename ... on ValidationError { code details } } }' % (title, literal)
        r = await client.post("/graphql", headers=editor, json={"query": q})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out.get("data") is None or out["data"]["createIncident"]["__typename"] == "ValidationError", out
    assert await bk.mongo.incidents.count_documents({"title": title}) == 0
    # nesting within the documented depth (8) is kept as sent
    ok = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
    r = await client.post(BASE, headers=editor, json={"title": title, "timeline": [
        {"type": "Comment", "source": "t", "message": "m", "details": ok}]})
    assert r.status_code == 201 and r.json()["timeline"][0]["details"] == ok


async def test_datetimes_pushed_out_of_range_by_their_offset(client, editor):
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        r = await client.post(BASE, headers=editor, json={"title": "t", "detected_at": value})
        body = rest_error(r, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "detected_at"
    q = 'mutation { createIncident(input: {title: "t", detectedAt: "0001-01-01T00:00:00+01:00"}) ' \
        '{ __typename ... on ValidationError { field } } }'
    r = await client.post("/graphql", headers=editor, json={"query": q})
    out = r.json()
    assert out.get("data") is None or out["data"]["createIncident"]["__typename"] == "ValidationError", out


async def test_search_text_is_bounded(client, viewer):
    rest_error(await client.get(BASE, headers=viewer, params={"search": "a\x00b"}), 400, "INVALID_SEARCH")
    rest_error(await client.get(BASE, headers=viewer, params={"search": "x" * 40_000}), 400, "SEARCH_TOO_LONG")
    r = await client.get(BASE, headers=viewer, params={"search": "ordinary words"})
    assert r.status_code == 200
    r = await client.post("/graphql", headers=viewer, json={
        "query": "query($s: String!) { incidents(search: $s) { totalCount } }", "variables": {"s": "y" * 5000}})
    assert r.json()["errors"][0]["extensions"]["code"] == "SEARCH_TOO_LONG"


async def test_unicode_digits_are_not_integers(client, viewer, editor):
    r = await client.post(BASE, headers=editor, json={"title": "digits"})
    name = r.json()["name"]
    for path in (f"{BASE}{name}/similar/", "/api/knowledge/knowledge-articles/popular/"):
        for raw in ("²", "٣", "-1", "0", "10000"):
            rest_error(await client.get(path, headers=viewer, params={"limit": raw}), 400)
    r = await client.get(f"{BASE}{name}/similar/", headers=viewer, params={"limit": "3"})
    assert r.status_code == 200


async def test_bodies_must_be_json(client, editor, bk):
    title = unique("ctype")
    body = json.dumps({"title": title})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = await client.post(BASE, headers={**editor, "Content-Type": ctype}, content=body)
        rest_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = await client.post(BASE, headers={**editor, "Content-Type": "application/json; charset=utf-8"}, content=body)
    assert r.status_code == 201
    assert await bk.mongo.incidents.count_documents({"title": title}) == 1
    r = await client.post(BASE, headers={**editor, "Content-Type": "application/json"},
                          content=b'{"title": "' + b"x" * (bk.settings.max_body_bytes + 1) + b'"}')
    rest_error(r, 413, "BODY_TOO_LARGE")


async def test_a_timeline_stops_growing_at_its_cap(client, editor, bk):
    r = await client.post(BASE, headers=editor, json={"title": "cap", "timeline": [
        {"type": "Detection", "source": "t", "message": "first"}]})
    name = r.json()["name"]
    saved = bk.settings.max_events_per_incident, bk.settings.max_timeline_bytes
    bk.settings.max_events_per_incident = 4
    try:
        events = [{"type": "Comment", "source": "t", "message": f"m{i}"} for i in range(3)]
        assert (await client.post(f"{BASE}{name}/events/", headers=editor, json={"events": events})).status_code == 201
        r = await client.post(f"{BASE}{name}/events/", headers=editor, json={"events": events[:1]})
        body = rest_error(r, 409, "TIMELINE_FULL")
        assert body["details"]["event_count"] == 4 and body["details"]["max_events"] == 4
        bk.settings.max_events_per_incident = 100
        bk.settings.max_timeline_bytes = 20_000
        big = {"type": "Comment", "source": "t", "message": "x" * 4000}
        codes = [(await client.post(f"{BASE}{name}/events/", headers=editor, json={"events": [big]})).status_code
                 for _ in range(6)]
        assert codes[:4] == [201] * 4 and codes[-1] == 409
    finally:
        bk.settings.max_events_per_incident, bk.settings.max_timeline_bytes = saved
    doc = await bk.mongo.incidents.find_one({"name": name})
    assert len(doc["timeline"]) == 8 and doc["timeline_bytes"] <= 20_000
    r = await client.get(f"{BASE}{name}/", headers=editor)
    assert r.status_code == 200 and "timeline_bytes" not in r.json()


async def test_lone_surrogates_and_huge_lists_are_refused(client, editor, viewer):
    body = '{"title": "s", "timeline": [{"type": "Comment", "source": "t", "message": "m", "details": {"k": "\\udfff"}}]}'
    rest_error(await client.post(BASE, headers={**editor, "Content-Type": "application/json"}, content=body),
               400, "INVALID_STRING")
    r = await client.post("/graphql", headers={**viewer, "Content-Type": "application/json"},
                          content=b'{"query": "{ __typename }", "operationName": "\\ud800"}')
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "INVALID_STRING"
    r = await client.post("/graphql", headers={**viewer, "Content-Type": "application/json"},
                          content=b'{"query": "query($s: String!) { incidents(search: $s) { totalCount } }", '
                                  b'"variables": {"s": "\\udc00"}}')
    assert r.status_code == 400
    many = json.dumps({"query": "{ __typename }", "variables": {"c": ["x"] * 30_000}})
    r = await client.post("/graphql", headers={**viewer, "Content-Type": "application/json"}, content=many)
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "JSON_TOO_LARGE"


async def test_an_incident_named_search_is_a_read(client, editor, viewer, bk):
    from app.http import ratelimit

    assert ratelimit.classify("GET", "/api/v1/incidents/search/") == "read"
    assert ratelimit.classify("POST", "/api/knowledge/knowledge-articles/search/") == "search"


async def test_bodies_are_typed_as_json_strictly_as_the_document_says(client, editor):
    """Before: `"resolved_at": 0` resolved an incident in 1970, `false` was taken as 0.0 and `0` as false."""
    inc = (await client.post("/api/v1/incidents/", headers=editor, json={"title": "strict typing"})).json()
    for path, body, field in (
            (f"/api/v1/incidents/{inc['name']}/resolve/", {"resolution": "x", "resolved_at": 0}, "resolved_at"),
            ("/api/v1/incidents/", {"title": "t", "detected_at": 1700000000}, "detected_at"),
            ("/api/knowledge/postmortem-generations/generate_postmortem/",
             {"incident_id": inc["id"], "force": 0}, "force"),
            ("/api/knowledge/knowledge-articles/search/", {"query": "x", "offset": False}, "offset")):
        r = await client.post(path, headers=editor, json=body)
        assert r.status_code == 400 and r.json()["details"][0]["field"] == field, (path, r.text)
    got = (await client.get(f"/api/v1/incidents/{inc['name']}/", headers=editor)).json()
    assert got["status"] == "OPEN" and got["resolved_at"] is None
    # what JSON means stays accepted: RFC 3339 strings, any case of an event severity, one event object
    r = await client.post(f"/api/v1/incidents/{inc['name']}/events/", headers=editor,
                          json={"type": "Comment", "source": "me", "message": "m", "severity": "HIGH",
                                "timestamp": "2026-03-19T17:20:00+02:00"})
    assert r.status_code == 201, r.text
