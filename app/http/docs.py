"""The API reference page, GET /docs: Swagger UI over the OpenAPI document (GET /openapi.json), served
by this service with its assets, so it works with no internet. Served without credentials in every
environment: the page holds no data, like the document it shows; every request its "Try it out" sends
carries the token the user gives it under "Authorize" (see static/swagger-ui/page.js).

The assets (static/swagger-ui/, see SOURCES.md there) live under /static/swagger-ui/<digest>/<file>,
outside /api/ and /graphql so the auth middleware does not apply, and are cached for a year; the page
itself is revalidated on every load (app/http/static_bundle.py, shared with the GraphiQL page). The page
has no inline script: page.js reads the document's URL from the page's data- attributes.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.http.static_bundle import STRICT_CSP, StaticBundle, page_headers

STATIC = Path(__file__).parent / "static" / "swagger-ui"
PREFIX = "/static/swagger-ui"
# The files served, in the order the page loads them; nothing else in the folder is served.
STYLES = ("swagger-ui.css", "page.css")
SCRIPTS = ("swagger-ui-bundle.js", "page.js")
BUNDLE = StaticBundle(STATIC, PREFIX, styles=STYLES, scripts=SCRIPTS, route_name="docs_asset")
OPENAPI_PATH = "/openapi.json"
# Scripts and connections to this origin only (Swagger UI needs no eval); its stylesheet draws its icons
# as data: URLs. React sets its inline styles through the DOM, which CSP does not restrict.
CSP = STRICT_CSP
PAGE_HEADERS = page_headers(CSP)

_HTML = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>API reference · Incident knowledge</title>
    <link rel="icon" href="data:,">
{styles}
  </head>
  <body>
    <header class="ikl-docs-bar">
      <strong>Incident knowledge REST API</strong>
      <span>To try an operation: <b>Authorize</b>, paste an API token (<code>ikl create_token NAME</code>
        prints one; <code>Token &lt;key&gt;</code> or the bare key), then <b>Try it out</b> and <b>Execute</b>.
        Requests go to this server, as the token's user.</span>
      <a href="{openapi}">OpenAPI document</a>
    </header>
    <main id="swagger-ui" data-openapi-url="{openapi}" data-root-path="{root}">Loading…</main>
    <noscript>The API reference needs JavaScript; the OpenAPI document is at
      <a href="{openapi}">{openapi}</a>.</noscript>
{scripts}
  </body>
</html>
"""


async def page(request: Request) -> Response:
    return await BUNDLE.page(request, _HTML, PAGE_HEADERS, openapi=OPENAPI_PATH, root="")


# The page, then its assets (outside /api and /graphql, so no token is needed).
routes: list[BaseRoute] = [Route("/docs", page, methods=["GET"], name="docs"),
                           Route("/docs/", page, methods=["GET"], name="docs_slash"),
                           BUNDLE.route]
