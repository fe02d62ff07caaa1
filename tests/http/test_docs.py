"""The API reference page, /docs, works with no internet: the page names only assets this service serves
and runs no inline script (a strict Content-Security-Policy), every asset is served (no token, a JS/CSS
type, cached for long under a versioned path, gzipped when asked), nothing else is, and the vendored
Swagger UI files are the ones SOURCES.md describes. With Playwright and Chromium on the machine the page
is also driven in a real headless browser (bench/docs_browser_check.py); without them that test is
skipped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from app.http.docs import STATIC
from tests.conftest import ROOT, serve_api

TYPES = {".js": "text/javascript", ".css": "text/css"}
ASSET = re.compile(r"/static/swagger-ui/[0-9a-f]{16}/[\w.-]+\.(js|css)")


class _Page(HTMLParser):
    """The page's references (tag, URL), its scripts' inline text, and the Swagger UI element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.inline: list[str] = []
        self.root: dict[str, str | None] = {}
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, value))
            if name.startswith("on"):
                self.inline.append(f"{tag} {name}={value}")
        if dict(attrs).get("id") == "swagger-ui":
            self.root = dict(attrs)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


def _parse(html: str) -> _Page:
    parser = _Page()
    parser.feed(html)
    return parser


async def _page(client, path: str = "/docs") -> httpx.Response:
    r = await client.get(path)  # no token
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.text[:300])
    return r


def _assets(page: _Page) -> list[str]:
    return [url for _, url in page.refs if url.startswith("/static/")]


async def test_page_needs_no_token_and_names_only_local_assets(client):
    for path in ("/docs", "/docs/"):
        r = await _page(client, path)
        page = _parse(r.text)
        assert not re.findall(r"(?:\b[a-z][a-z0-9+.-]*:)?//[^\s\"'<>]*", r.text, re.I), "an absolute URL in the page"
        assert not page.inline, f"inline script: {page.inline}"
        refs = [(tag, url) for tag, url in page.refs if not url.startswith("data:")]
        assets = [(tag, url) for tag, url in refs if tag != "a"]
        assert [tag for tag, _ in assets] == ["link", "link", "script", "script"]
        assert all(ASSET.fullmatch(url) for _, url in assets), assets
        assert [url.rsplit("/", 1)[1] for _, url in assets] == \
            ["swagger-ui.css", "page.css", "swagger-ui-bundle.js", "page.js"]  # page.js after the bundle it uses
        assert len({url.split("/")[3] for _, url in assets}) == 1  # one version for the whole set
        assert {url for tag, url in refs if tag == "a"} == {"/openapi.json"}
        assert page.root["data-openapi-url"] == "/openapi.json" and page.root["data-root-path"] == ""
        assert "Authorize" in r.text and "Token &lt;key&gt;" in r.text and "ikl create_token" in r.text
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_the_content_security_policy_is_strict(client):
    csp = (await _page(client)).headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives == {
        "default-src": ["'none'"], "script-src": ["'self'"], "style-src": ["'self'"], "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"], "base-uri": ["'none'"], "form-action": ["'none'"], "frame-ancestors": ["'none'"],
    }, csp


async def test_every_asset_is_served_with_its_type_and_a_long_cache(client):
    for url in _assets(_parse((await _page(client)).text)):
        name = url.rsplit("/", 1)[1]
        on_disk = (STATIC / name).read_bytes()
        plain = await client.get(url, headers={"Accept-Encoding": "identity"})  # no token
        assert plain.status_code == 200, url
        assert plain.headers["content-type"].startswith(TYPES[Path(name).suffix]), plain.headers["content-type"]
        assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert plain.headers["x-content-type-options"] == "nosniff"
        assert "content-encoding" not in plain.headers and plain.content == on_disk
        packed = await client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
        assert packed.headers["content-encoding"] == "gzip" and packed.content == on_disk  # httpx decodes it
        assert int(packed.headers["content-length"]) < len(on_disk)


async def test_only_the_pages_assets_are_served_and_nothing_is_listed(client):
    refs = _assets(_parse((await _page(client)).text))
    version_dir = refs[0].rsplit("/", 1)[0]
    for url in ("/static/swagger-ui/", "/static/swagger-ui", version_dir, version_dir + "/",
                version_dir + "/LICENSE.swagger-ui", version_dir + "/NOTICE.swagger-ui", version_dir + "/SOURCES.md",
                version_dir + "/swagger-ui-bundle.js.LICENSE.txt", version_dir + "/swagger-ui-bundle.js.map",
                version_dir + "/swagger-ui.css.map", version_dir + "/index.html", version_dir + "/%2e%2e%2fdocs.py",
                version_dir + "/graphiql.min.js",  # another page's asset, under this page's version
                "/static/swagger-ui/0123456789abcdef/page.js", "/static/swagger-ui/page.js"):
        r = await client.get(url)
        assert r.status_code == 404, (url, r.status_code)


async def test_under_a_root_path_every_url_carries_it(app):
    transport = httpx.ASGITransport(app=app, root_path="/ikl")
    async with httpx.AsyncClient(transport=transport, base_url="http://proxied") as c:
        r = await _page(c, "/ikl/docs")
        page = _parse(r.text)
        assert page.root["data-openapi-url"] == "/ikl/openapi.json" and page.root["data-root-path"] == "/ikl"
        refs = [url for _, url in page.refs if not url.startswith("data:")]
        assert len(refs) == 6 and all(url.startswith("/ikl/") for url in refs), refs  # 4 assets, 2 links
        for url in refs:
            if url.startswith("/ikl/static/"):
                assert (await c.get(url)).status_code == 200, url


async def test_the_pages_own_files_load_nothing_from_another_host():
    """page.js/page.css name no URL; the stylesheets load only data: URLs and nothing with @import; the
    page turns off the one thing Swagger UI contacts another host for (the online validator)."""
    for name in ("page.js", "page.css"):
        assert not re.findall(r"(?:https?:)?//[\w.-]+\.\w", (STATIC / name).read_text()), name
    for name in ("swagger-ui.css", "page.css"):
        css = (STATIC / name).read_text()
        assert "@import" not in css and "@font-face" not in css, name
        urls = re.findall(r"url\(\s*['\"]?([^'\")\s]{0,12})", css)
        assert all(url.startswith("data:") for url in urls), (name, {u for u in urls if not u.startswith("data:")})
    script = (STATIC / "page.js").read_text()
    assert re.search(r"\bvalidatorUrl:\s*null\b", script) and re.search(r"\bqueryConfigEnabled:\s*false\b", script)
    assert "innerHTML" not in script and "eval(" not in script


def test_the_vendored_files_are_those_sources_md_describes():
    sources = (STATIC / "SOURCES.md").read_text()
    rows = re.findall(r"^\| `([\w.-]+)` \| `swagger-ui-dist@(5\.[\d.]+)` \| [^|]+ \| ([\d,]+) \| `([\w+/=]+)` \|$",
                      sources, re.M)
    assert {name for name, *_ in rows} == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, _, size, sha384 in rows:
        body = (STATIC / name).read_bytes()
        assert len(body) == int(size.replace(",", "")), name
        assert base64.b64encode(hashlib.sha384(body).digest()).decode() == sha384, name
    assert {p.name for p in STATIC.iterdir()} == {
        "swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-bundle.js.LICENSE.txt", "LICENSE.swagger-ui",
        "NOTICE.swagger-ui", "SOURCES.md", "page.js", "page.css"}  # no source maps, nothing unused
    assert "Apache License" in (STATIC / "LICENSE.swagger-ui").read_text()


async def test_the_document_the_page_shows_needs_no_token_and_says_how_to_sign_in(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text[:200]
    document = r.json()
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"].values()
    assert any(s["type"] == "apiKey" and s["in"] == "header" and s["name"] == "Authorization" for s in schemes)
    assert "/api/v1/incidents/" in document["paths"]


def _browser_check():
    path = ROOT / "bench" / "docs_browser_check.py"
    spec = importlib.util.spec_from_file_location("docs_browser_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_in_a_headless_browser_with_no_other_host_reachable(stack, client, admin):
    check = _browser_check()
    if not check.browser_available():
        pytest.skip(f"needs Playwright (the 'browser' extra) and Chromium at {check.CHROMIUM}")
    r = await client.post("/api/v1/incidents/", json={"title": "API reference browser test"}, headers=admin)
    assert r.status_code == 201, r.text
    async with serve_api(stack, IKL_OUTBOX_SWEEP_INTERVAL="0") as base:
        token = admin["Authorization"].split(" ", 1)[1]
        results = await asyncio.to_thread(check.run_check, base, token)
    failed = [what for ok, what in results if not ok]
    assert results and not failed, "\n".join(failed)
