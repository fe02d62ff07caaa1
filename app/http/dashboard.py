"""The dashboard page, GET /dashboard: the KPIs over time, the rising learning patterns and the overdue
postmortems, drawn with Chart.js from the GraphQL API only (`kpis`, `overduePostmortems`), as the signed-in
user sees them. Served by this service with its assets, so it works with no internet.

Served without credentials, like GraphiQL and /docs: the page is static and holds no data; every query its
script sends carries the token the user gives it (kept in this browser's localStorage) or, without one, the
session of this origin (the `sessionid` cookie, with `X-CSRFToken` from the `csrftoken` cookie). The assets
(static/dashboard/, see SOURCES.md there) live under /static/dashboard/<digest>/<file>, outside /api/ and
/graphql, and are cached for a year; the page itself is revalidated on every load (app/http/static_bundle.py).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.http.static_bundle import STRICT_CSP, StaticBundle, page_headers

STATIC = Path(__file__).parent / "static" / "dashboard"
PREFIX = "/static/dashboard"
# The files served, in the order the page loads them; nothing else in the folder is served.
STYLES = ("dashboard.css",)
SCRIPTS = ("chart.umd.min.js", "dashboard.js")
BUNDLE = StaticBundle(STATIC, PREFIX, styles=STYLES, scripts=SCRIPTS, route_name="dashboard_asset")
# Scripts, styles and connections to this origin only; Chart.js draws on canvases and sets their sizes
# through the DOM (not restricted by CSP), needs no eval and no inline style.
CSP = STRICT_CSP
PAGE_HEADERS = page_headers(CSP)

_HTML = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Dashboard · Incident knowledge</title>
    <link rel="icon" href="data:,">
{styles}
  </head>
  <body data-graphql="{graphql}">
    <header class="bar">
      <strong>How we learn from incidents</strong>
      <label>Weeks <select id="weeks"><option>4</option><option>8</option><option selected>12</option>
        <option>26</option><option>52</option></select></label>
      <label>Team <input id="team" placeholder="all" size="14"></label>
      <label>Namespace <input id="namespace" placeholder="all" size="12"></label>
      <label>API token <input id="token" type="password" placeholder="or sign in (session)" size="24"
        autocomplete="off"></label>
      <button id="load" type="button">Load</button>
      <span id="who" class="who"></span>
    </header>
    <p id="status" class="status" role="status">Loading…</p>
    <section id="tiles" class="tiles" aria-label="The window's figures"></section>
    <section class="charts">
      <figure><figcaption>Postmortems published on time, action items closed, recommendations applied
        (per week)</figcaption><canvas id="rates" aria-label="Rates per week"></canvas></figure>
      <figure><figcaption>Median time from resolution to a published postmortem (hours)</figcaption>
        <canvas id="publish" aria-label="Time to publish per week"></canvas></figure>
      <figure><figcaption>Knowledge-base searches and the share that found nothing</figcaption>
        <canvas id="searches" aria-label="Searches per week"></canvas></figure>
      <figure><figcaption>Incidents by severity (detected per week)</figcaption>
        <canvas id="severity" aria-label="Incidents by severity per week"></canvas></figure>
    </section>
    <section class="tables">
      <div><h2>Rising learning patterns</h2><table id="rising"><thead><tr><th>Pattern</th><th>Type</th>
        <th>Earlier half</th><th>Recent half</th></tr></thead><tbody></tbody></table></div>
      <div><h2>Overdue postmortems</h2><table id="overdue"><thead><tr><th>Postmortem</th><th>Severity</th>
        <th>Status</th><th>Due</th></tr></thead><tbody></tbody></table></div>
    </section>
    <noscript>The dashboard needs JavaScript; its figures are at GET /api/knowledge/kpis/.</noscript>
{scripts}
  </body>
</html>
"""


async def page(request: Request) -> Response:
    return await BUNDLE.page(request, _HTML, PAGE_HEADERS, graphql="/graphql")


# The page, then its assets (outside /api and /graphql, so no token is needed).
routes: list[BaseRoute] = [Route("/dashboard", page, methods=["GET"], name="dashboard"),
                           Route("/dashboard/", page, methods=["GET"], name="dashboard_slash"),
                           BUNDLE.route]
