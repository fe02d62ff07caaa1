"""GraphiQL works with no internet: the page names only assets this service serves, every one of them is
served (no token, a JS/CSS type, cached for long under a versioned path), the page needs no token while
every operation does. With Playwright and Chromium on the machine the page is also driven in a real
headless browser (bench/graphiql_browser_check.py); without them that test is skipped."""

from __future__ import annotations

import asyncio
import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from app.http.graphiql import STATIC
from tests.conftest import ROOT, serve_api

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
TYPES = {".js": "text/javascript", ".css": "text/css"}


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, value))


def _refs(html: str) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(html)
    return parser.refs


@pytest.fixture(scope="module")
async def dev(stack):
    """The app as `dev.py run` serves it (development: GraphiQL on)."""
    from app.main import create_app
    from app.settings import Settings

    application = create_app(Settings(environment="development", outbox_sweep_interval=0))
    async with application.router.lifespan_context(application), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://dev") as client:
        yield client


async def _page(dev) -> httpx.Response:
    r = await dev.get("/graphql", headers=HTML)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text[:300]
    return r


async def test_page_needs_no_token_and_names_only_local_assets(dev):
    r = await _page(dev)
    assert "Loading" in r.text and "CodeMirror" not in r.text  # the page itself is a shell; scripts build it
    assert not re.findall(r"(?:\b[a-z][a-z0-9+.-]*:)?//[^\s\"'<>]*", r.text, re.I), "an absolute URL in the page"
    refs = [(tag, url) for tag, url in _refs(r.text) if not url.startswith("data:")]
    assert [tag for tag, _ in refs] == ["link", "link", "script", "script", "script", "script"]
    assert all(re.fullmatch(r"/static/graphiql/[0-9a-f]{16}/[\w.-]+\.(js|css)", url) for _, url in refs), refs
    assert len({url.split("/")[3] for _, url in refs}) == 1  # one version for the whole set
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    assert r.headers["cache-control"] == "no-cache"


async def test_every_asset_is_served_with_its_type_and_a_long_cache(dev):
    refs = [url for _, url in _refs((await _page(dev)).text) if url.startswith("/static/")]
    for url in refs:
        name = url.rsplit("/", 1)[1]
        on_disk = (STATIC / name).read_bytes()
        plain = await dev.get(url, headers={"Accept-Encoding": "identity"})  # no token
        assert plain.status_code == 200, url
        assert plain.headers["content-type"].startswith(TYPES[Path(name).suffix]), plain.headers["content-type"]
        assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert plain.headers["x-content-type-options"] == "nosniff"
        assert "content-encoding" not in plain.headers and plain.content == on_disk
        packed = await dev.get(url, headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and packed.content == on_disk  # httpx decodes it
        assert int(packed.headers["content-length"]) < len(on_disk)


async def test_only_the_pages_assets_are_served_and_nothing_is_listed(dev):
    refs = [url for _, url in _refs((await _page(dev)).text) if url.startswith("/static/")]
    version_dir = refs[0].rsplit("/", 1)[0]
    for url in ("/static/graphiql/", "/static/graphiql", version_dir, version_dir + "/",
                version_dir + "/LICENSE.graphiql", version_dir + "/SOURCES.md", version_dir + "/%2e%2e%2fgraphiql.py",
                "/static/graphiql/0123456789abcdef/page.js", "/static/graphiql/page.js"):
        r = await dev.get(url)
        assert r.status_code == 404, (url, r.status_code)


async def test_operations_need_a_token_even_from_the_page(dev, viewer):
    query = {"query": "{ incidents { totalCount } }"}
    for accept in ("application/json", HTML["Accept"]):
        r = await dev.get("/graphql", params=query, headers={"Accept": accept})
        assert r.status_code == 401, (accept, r.status_code, r.text[:200])
        assert (await dev.post("/graphql", json=query, headers={"Accept": accept})).status_code == 401
    r = await dev.get("/graphql", params=query, headers={**viewer, "Accept": "application/json"})
    assert r.status_code == 200 and isinstance(r.json()["data"]["incidents"]["totalCount"], int)


def _browser_check():
    path = ROOT / "bench" / "graphiql_browser_check.py"
    spec = importlib.util.spec_from_file_location("graphiql_browser_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_in_a_headless_browser_with_no_other_host_reachable(stack, dev, admin):
    check = _browser_check()
    if not check.browser_available():
        pytest.skip(f"needs Playwright (the 'browser' extra) and Chromium at {check.CHROMIUM}")
    r = await dev.post("/api/v1/incidents/", json={"title": "GraphiQL browser test"}, headers=admin)
    assert r.status_code == 201, r.text
    async with serve_api(stack, IKL_ENVIRONMENT="development", IKL_OUTBOX_SWEEP_INTERVAL="0") as base:
        token = admin["Authorization"].split(" ", 1)[1]
        results = await asyncio.to_thread(check.run_check, base, token)
    failed = [what for ok, what in results if not ok]
    assert results and not failed, "\n".join(failed)
