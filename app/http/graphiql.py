"""The GraphiQL page (development only) and its assets, served by this service: nothing is fetched
from another host, so it works with no internet. Served without credentials: the page is static and
runs no operation; every query it sends carries the token the user gives it (see page.js).

The assets (static/graphiql/, see SOURCES.md there) live under a path named by a digest of their
content, /static/graphiql/<digest>/<file>, outside /api/ and /graphql so the auth middleware does not
apply, and are cached for a year; the page itself is revalidated on every load (app/http/static_bundle.py,
shared with the API reference page, /docs).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.http.static_bundle import StaticBundle, page_headers

STATIC = Path(__file__).parent / "static" / "graphiql"
PREFIX = "/static/graphiql"
# The files served, in the order the page loads them; nothing else in the folder is served.
STYLES = ("graphiql.min.css", "page.css")
SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "page.js")
BUNDLE = StaticBundle(STATIC, PREFIX, styles=STYLES, scripts=SCRIPTS, route_name="graphiql_asset")
# Scripts and connections to this origin only; GraphiQL's components set inline styles and its
# stylesheet embeds its fonts and icons as data: URLs.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = page_headers(CSP)

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


def asset_urls(root_path: str = "") -> list[str]:
    """The page's asset URLs (absolute paths on this server), styles first."""
    return BUNDLE.urls(root_path)


async def page(request: Request) -> Response:
    return await BUNDLE.page(request, _HTML, PAGE_HEADERS)


asset = BUNDLE.asset
# Routes for the page's static assets (outside /api and /graphql, so no token is needed).
routes: list[BaseRoute] = [BUNDLE.route]
