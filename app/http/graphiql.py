"""The GraphiQL page (development only) and its assets, served by this service: nothing is fetched
from another host, so it works with no internet. Served without credentials: the page is static and
runs no operation; every query it sends carries the token the user gives it (see page.js).

The assets (static/graphiql/, see SOURCES.md there) live under a path named by a digest of their
content, /static/graphiql/<digest>/<file>, outside /api/ and /graphql so the auth middleware does not
apply, and are cached for a year; the page itself is revalidated on every load.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).parent / "static" / "graphiql"
PREFIX = "/static/graphiql"
# The files served, in the order the page loads them; nothing else in the folder is served.
STYLES = ("graphiql.min.css", "page.css")
SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "page.js")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff",
                 "Vary": "Accept-Encoding"}
# Scripts and connections to this origin only; GraphiQL's components set inline styles and its
# stylesheet embeds its fonts and icons as data: URLs.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}

_HTML = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>GraphiQL · Incident knowledge</title>
    <link rel="icon" href="data:,">
{styles}
  </head>
  <body>
    <div id="graphiql" class="graphiql-container ikl-shell">Loading…</div>
    <noscript>GraphiQL needs JavaScript.</noscript>
{scripts}
  </body>
</html>
"""


@functools.cache
def _bundle() -> tuple[str, dict[str, bytes]]:
    """The served files and a digest of them all, read once per process."""
    files = {name: (STATIC / name).read_bytes() for name in (*STYLES, *SCRIPTS)}
    digest = hashlib.sha256()
    for name, body in files.items():
        digest.update(f"{name}\0{len(body)}\0".encode())
        digest.update(body)
    return digest.hexdigest()[:16], files


@functools.cache
def _gzipped(name: str) -> bytes:
    return gzip.compress(_bundle()[1][name], compresslevel=6, mtime=0)


def asset_urls(root_path: str = "") -> list[str]:
    """The page's asset URLs (absolute paths on this server), styles first."""
    version, _ = _bundle()
    return [f"{root_path}{PREFIX}/{version}/{name}" for name in (*STYLES, *SCRIPTS)]


async def page(request: Request) -> Response:
    urls = [html.escape(url) for url in await run_in_threadpool(asset_urls, request.scope.get("root_path", ""))]
    styles = "\n".join(f'    <link rel="stylesheet" href="{url}">' for url in urls[:len(STYLES)])
    scripts = "\n".join(f'    <script src="{url}"></script>' for url in urls[len(STYLES):])
    return HTMLResponse(_HTML.format(styles=styles, scripts=scripts), headers=PAGE_HEADERS)


async def asset(request: Request) -> Response:
    version, files = await run_in_threadpool(_bundle)
    name = request.path_params["name"]
    if request.path_params["version"] != version or name not in files:
        raise HTTPException(404, "Not Found")
    headers = dict(ASSET_HEADERS)
    body = files[name]
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        body = await run_in_threadpool(_gzipped, name)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=MEDIA_TYPES[Path(name).suffix], headers=headers)


# Routes for the page's static assets (outside /api and /graphql, so no token is needed).
routes: list[BaseRoute] = [Route(PREFIX + "/{version}/{name}", asset, methods=["GET"], name="graphiql_asset")]
