"""The indexed router (app/http/routing.py) finds, for every path, the route Starlette's one-by-one scan finds:
every declared route's own path (its parameters filled in), with and without a trailing slash and under a root
path; a path no route takes is still a 404 in the REST error shape."""

from __future__ import annotations

import re

from starlette.routing import Match

from app.http.routing import DEPTH, IndexedRouter, literal_segments
from app.main import create_app


def _first(routes, scope):
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


def test_every_route_is_found_as_the_full_scan_finds_it():
    app = create_app()
    router = app.router
    assert isinstance(router, IndexedRouter)
    checked = 0
    for route in app.routes:
        if not isinstance(getattr(route, "path", None), str):
            continue
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for variant in {path, path.rstrip("/") or "/", path.rstrip("/") + "/"}:
            for root in ("", "/ikl"):
                scope = {"type": "http", "path": root + variant, "root_path": root, "method": "GET", "headers": []}
                assert _first(router.candidates(scope), scope) is _first(app.routes, scope), (root, variant)
                checked += 1
    assert checked > 400
    # a resource's routes are tried, not the other resources'
    scope = {"type": "http", "path": "/api/knowledge/webhooks/x1/deliveries/", "root_path": "", "method": "GET"}
    assert all(getattr(r, "path", "").startswith(("/api/knowledge/webhooks/", "/api/knowledge/webhooks"))
               for r in router.candidates(scope) if literal_segments(getattr(r, "path", "")))
    assert len(router.candidates(scope)) < len(app.routes) // 5


def test_literal_segments():
    assert literal_segments("/api/v1/incidents/{name}/timeline/") == ("api", "v1", "incidents")
    assert literal_segments("/healthz") == ("healthz",)
    assert literal_segments("/{anything:path}") == ()
    assert len(literal_segments("/a/b/c/d/e")) == DEPTH


async def test_a_path_no_route_takes_is_a_404(client, viewer):
    r = await client.get("/api/v1/no-such-thing/", headers=viewer)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = await client.get("/api/v1/incidents/INC-NOPE-1/nothing-here/", headers=viewer)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


def test_a_long_path_is_routed_but_not_remembered():
    """Paths are the caller's: the candidates of one whose first segments are long are worked out, not kept."""
    app = create_app()
    router = app.router
    long = "/api/knowledge/" + "w" * 5000 + "/"
    scope = {"type": "http", "path": long, "root_path": "", "method": "GET"}
    assert _first(router.candidates(scope), scope) is _first(app.routes, scope) is None
    assert all(sum(map(len, key)) <= 200 for key in router._candidates)
