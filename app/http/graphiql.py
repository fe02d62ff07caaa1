"""The GraphiQL page (development only). Served without credentials: it is static and runs no
operation; every query it sends carries the token the user gives it."""

from __future__ import annotations

from pathlib import Path

import strawberry
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

_HTML = (Path(strawberry.__file__).parent / "static" / "graphiql.html").read_text()

# Routes for the page's static assets (outside /api and /graphql, so no token is needed).
routes: list[BaseRoute] = []


async def page(request: Request) -> Response:
    return HTMLResponse(_HTML.replace("{{ SUBSCRIPTION_ENABLED }}", "false")
                        .replace("{{ REPLACE_VARIABLES }}", ""))
