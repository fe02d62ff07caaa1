"""GET /openapi.json: an OpenAPI 3.1 document of every REST route, generated from the resource declarations,
valid by an OpenAPI validator; real responses are checked against it by every test (tests/contract.py)."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from starlette.routing import Route

from app.http.resources import allowed
from app.main import RESOURCES
from tests.test_resources import concrete

# The routes the API documentation (../shared/spec) names, {…} for a path parameter.
DOCUMENTED = [
    "GET /api/knowledge/postmortems/", "POST /api/knowledge/postmortems/", "GET /api/knowledge/postmortems/{}/",
    "POST /api/knowledge/postmortems/{}/generate_automated/", "POST /api/knowledge/postmortems/{}/approve/",
    "POST /api/knowledge/postmortems/{}/publish/", "GET /api/knowledge/postmortems/overdue/",
    "GET /api/knowledge/postmortems/statistics/", "GET /api/knowledge/knowledge-articles/",
    "POST /api/knowledge/knowledge-articles/", "GET /api/knowledge/knowledge-articles/{}/",
    "POST /api/knowledge/knowledge-articles/{}/rate/", "POST /api/knowledge/knowledge-articles/{}/bookmark/",
    "POST /api/knowledge/knowledge-articles/search/", "GET /api/knowledge/knowledge-articles/due_for_review/",
    "GET /api/knowledge/knowledge-articles/popular/", "GET /api/knowledge/knowledge-articles/statistics/",
    "GET /api/knowledge/recommendations/", "GET /api/knowledge/recommendations/{}/",
    "POST /api/knowledge/recommendations/{}/apply/", "POST /api/knowledge/recommendations/{}/rate_effectiveness/",
    "POST /api/knowledge/recommendations/generate_for_incident/", "GET /api/knowledge/recommendations/statistics/",
    "GET /api/knowledge/learning-patterns/", "GET /api/knowledge/learning-patterns/{}/",
    "POST /api/knowledge/learning-patterns/{}/validate/", "POST /api/knowledge/learning-patterns/{}/apply/",
    "GET /api/knowledge/learning-patterns/statistics/", "GET /api/knowledge/postmortem-generations/",
    "GET /api/knowledge/postmortem-generations/{}/", "POST /api/knowledge/postmortem-generations/generate_postmortem/",
    "GET /api/v1/incidents/{}/timeline/",
]


def shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path).rstrip("/") + "/"


async def document(client) -> dict:
    r = await client.get("/openapi.json")  # no credentials: the contract holds no data
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text[:200]
    return r.json()


async def test_the_document_is_valid_openapi_3_1(client):
    doc = await document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


async def test_every_route_of_the_app_and_of_the_spec_is_in_the_document(client, app):
    doc = await document(client)
    operations = {f"{m.upper()} {shape(p)}" for p, ops in doc["paths"].items() for m in ops}
    assert not [d for d in DOCUMENTED if f"{d.split()[0]} {shape(d.split()[1])}" not in operations]
    declared = {f"{m} {shape(p)}" for r in RESOURCES for p, methods, _ in r.paths() for m in allowed(methods)
                if m != "HEAD"}
    assert declared == operations
    served = {shape(r.path) for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")}
    assert served == {shape(p) for p in doc["paths"]}


async def test_every_documented_operation_answers_as_documented(client, admin):
    """Each operation, called on an item that does not exist (or with an empty body), answers a status its
    entry lists — and the body of that status validates (the client checks every response)."""
    doc = await document(client)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path.endswith("/events/") and "postmortem-generations" in path:
                continue  # an event stream; its 404 is tested with the generations
            r = await client.request(method.upper(), concrete(path), headers=admin,
                                     json={} if "requestBody" in op else None)
            assert str(r.status_code) in op["responses"], (method, path, r.status_code, r.text[:200])
            assert r.status_code < 500, (method, path, r.text[:300])


async def test_lists_are_drf_pages_and_errors_share_one_schema(client):
    doc = await document(client)
    schemas = doc["components"]["schemas"]
    assert set(schemas["Error"]["required"]) == {"error", "details", "code"}
    page = doc["paths"]["/api/knowledge/knowledge-articles/"]["get"]["responses"]["200"]
    ref = page["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schemas[ref]["properties"]) == {"count", "next", "previous", "results"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert any(s.startswith("2") for s in op["responses"]), (method, path)
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    assert response["$ref"].startswith("#/components/responses/"), (method, path, status)
    assert doc["components"]["securitySchemes"]
