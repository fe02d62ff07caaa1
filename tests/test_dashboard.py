"""The dashboard page (GET /dashboard): served without credentials (static, no data), under a strict CSP, naming
only this server's assets; its data comes from GraphQL with the user's credentials. With Playwright and
Chromium installed, the page is also driven in a headless browser (bench/dashboard_browser_check.py) with no
other host reachable; without them that test is skipped."""

from __future__ import annotations

import asyncio
import importlib.util
import re

import pytest

from tests.conftest import ROOT, serve_api


async def test_the_page_needs_no_token_and_names_only_local_assets(client):
    r = await client.get("/dashboard")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp and "default-src 'none'" in csp
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert urls and all(u.startswith("/static/dashboard/") or u.startswith("data:") for u in urls), urls
    for url in urls:
        if url.startswith("/static/"):
            asset = await client.get(url)
            assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"], url
    assert (await client.get("/static/dashboard/nothing/dashboard.js")).status_code == 404
    assert (await client.post("/dashboard")).status_code == 405


async def test_the_query_the_page_sends_answers_as_the_user_sees_it(client, viewer):
    script = (ROOT / "app" / "http" / "static" / "dashboard" / "dashboard.js").read_text()
    lines = re.search(r"var QUERY = \[(.*?)\]\.join", script, re.S).group(1)
    query = "\n".join(eval(line.strip().rstrip(",")) for line in lines.strip().splitlines())  # noqa: S307 - our own literals
    r = await client.post("/graphql", json={"query": query, "variables": {"weeks": 12}}, headers=viewer)
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
    data = r.json()["data"]
    assert len(data["kpis"]["perWeek"]) == 12 and data["me"]["role"] == "VIEWER"
    assert (await client.post("/graphql", json={"query": query, "variables": {"weeks": 12}})).status_code == 401


def _browser_check():
    path = ROOT / "bench" / "dashboard_browser_check.py"
    spec = importlib.util.spec_from_file_location("dashboard_browser_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_in_a_headless_browser_with_no_other_host_reachable(stack, client, admin):
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    check = _browser_check()
    if not check.browser_available():
        pytest.skip(f"needs Playwright (the 'browser' extra) and Chromium at {check.CHROMIUM}")
    r = await client.post("/api/v1/incidents/", json={"title": "Dashboard browser test", "severity": "HIGH"},
                          headers=admin)
    assert r.status_code == 201, r.text
    async with serve_api(stack, IKL_OUTBOX_SWEEP_INTERVAL="0") as base:
        token = admin["Authorization"].split(" ", 1)[1]
        results = await asyncio.to_thread(check.run_check, base, token, every_chart=False)
    failed = [what for ok, what in results if not ok]
    assert results and not failed, "\n".join(failed)
