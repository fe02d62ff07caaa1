"""Unexpected failures are masked to clients (REST and GraphQL) and carry the request id."""

from __future__ import annotations

import logging

from app.incidents import service


async def test_unexpected_rest_error_is_masked(client, viewer, monkeypatch, caplog):
    async def boom(*args, **kwargs):
        raise RuntimeError("secret connection string mongodb://admin:hunter2@db")

    monkeypatch.setattr(service, "timeline", boom)
    with caplog.at_level(logging.ERROR, logger="app.access"):
        r = await client.get("/api/v1/incidents/INC-1/timeline", headers={**viewer, "X-Request-ID": "req-42"})
    assert r.status_code == 500
    assert r.json() == {"error": "Internal server error", "details": {"request_id": "req-42"}, "code": "INTERNAL_ERROR"}
    assert "hunter2" not in r.text
    # the one boundary (app/http/observability.py) answers it with the headers every response carries: the request
    # id, and the rate limit the request was counted against
    assert r.headers["x-request-id"] == "req-42" and int(r.headers["x-ratelimit-remaining"]) >= 0
    # and logs it in full, with its traceback, for the operator
    [record] = [rec for rec in caplog.records if rec.getMessage() == "unhandled error"]
    assert record.exc_info and "hunter2" in str(record.exc_info[1])


async def test_a_database_past_its_deadline_is_a_503_not_a_500(client, editor, monkeypatch):
    """PyMongo refuses to send a commit that would pass the deadline (`ExecutionTimeout`, nothing written):
    before, a 500 INTERNAL_ERROR (bench/load.py saw 4 under load); the documented answer is a 503."""
    from pymongo.errors import ExecutionTimeout

    async def past_deadline(*args, **kwargs):
        raise ExecutionTimeout("operation would exceed time limit, remaining timeout:0.00000", 50)

    monkeypatch.setattr(service, "timeline", past_deadline)
    monkeypatch.setattr(service, "get_incident", past_deadline)
    r = await client.get("/api/v1/incidents/INC-1/timeline", headers=editor)
    assert r.status_code == 503 and r.json()["code"] == "DATABASE_UNAVAILABLE", r.text
    g = await client.post("/graphql", headers=editor, json={"query": '{ incident(name: "INC-1") { id } }'})
    assert g.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE", g.text


async def test_unexpected_graphql_error_is_masked(client, viewer, monkeypatch):
    async def boom(*args, **kwargs):
        raise RuntimeError("secret hunter2")

    monkeypatch.setattr(service, "get_incident", boom)
    r = await client.post("/graphql", headers={**viewer, "X-Request-ID": "req-43"},
                          json={"query": '{ incident(name: "x") { id } }'})
    err = r.json()["errors"][0]
    assert err["message"] == "Unexpected error." and "hunter2" not in r.text
    assert err["extensions"] == {"code": "INTERNAL_ERROR", "request_id": "req-43"}


async def test_unknown_route_and_method_use_the_error_format(client, viewer):
    r = await client.get("/api/v1/nothing/", headers=viewer)
    assert r.status_code == 404 and set(r.json()) == {"error", "details", "code"}
    r = await client.delete("/api/v1/incidents/", headers=viewer)
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_graphiql_is_served_in_development_only(client, stack):
    import httpx

    from app.main import create_app
    from app.settings import Settings

    dev = create_app(Settings(environment="development", outbox_sweep_interval=0))
    async with dev.router.lifespan_context(dev), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=dev), base_url="http://dev") as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        assert (await c.post("/graphql", json={"query": "{ __typename }"})).status_code == 401
    r = await client.get("/graphql", headers={"Accept": "text/html"})  # the suite runs as "test"
    assert r.status_code == 401


async def test_served_under_a_path_prefix_the_api_is_still_protected_and_usable(app, admin):
    """`uvicorn --root-path /ikl` puts the prefix in the path too: /ikl/api/… is protected like /api/…
    (before: every call was a 401, even with a valid token)."""
    import httpx

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path="/ikl")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/ikl/api/v1/incidents/")).status_code == 401
        r = await c.get("/ikl/api/v1/incidents/", headers=admin)
        assert r.status_code == 200, r.text
