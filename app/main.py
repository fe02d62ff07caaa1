"""create_app(): routes, middleware and lifespan — nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from app import domains  # noqa: F401 - every domain's hooks and job handlers registered
from app.backends import Backends, connect
from app.db import ensure_indexes
from app.http import dashboard, docs, graphiql, openapi
from app.http.auth import TokenAuthMiddleware
from app.http.health import healthz, readyz
from app.http.observability import RequestContextMiddleware, metrics
from app.http.resources import permission_entries
from app.http.routing import IndexedRouter
from app import permissions
from app.permissions import Entry
from app.activity import rest as activity_rest
from app.articles import rest as articles_rest
from app.incidents import embeddings as incident_embeddings
from app.incidents import rest as incidents_rest
from app.kpis import rest as kpis_rest
from app.predictions import rest as predictions_rest
from app.postmortems import rest as postmortems_rest
from app.patterns import rest as patterns_rest
from app.recommendations import rest as recommendations_rest
from app.users import rest as users_rest
from app.webhooks import rest as webhooks_rest
from app.indexing import outbox
from app.logs import configure_logging
from app.settings import Settings, get_settings
from indexers import registry
from indexers.base import apply_replicas
from schema.app import graphql_endpoint
from schema.schema import permission_entries as graphql_permission_entries
from schema.ws import graphql_ws_endpoint

log = logging.getLogger(__name__)

# Every REST resource, in routing order: its routes and the OpenAPI document both come from these.
RESOURCES = [*incidents_rest.RESOURCES, *predictions_rest.RESOURCES, *articles_rest.RESOURCES,
             *postmortems_rest.RESOURCES, *recommendations_rest.RESOURCES, *patterns_rest.RESOURCES,
             *kpis_rest.RESOURCES, *activity_rest.RESOURCES, *users_rest.RESOURCES,
             *webhooks_rest.RESOURCES]


async def prepare(bk: Backends) -> None:
    """MongoDB migrations and indexes, and search indices rebuilt from MongoDB where the alias is missing or
    stale: here for a small collection, else by the workers (the start does not wait; outbox.rebuild); their
    replicas set to IKL_SEARCH_REPLICAS."""
    await ensure_indexes(bk)
    for definition in registry().values():
        try:
            await outbox.rebuild(bk, definition)
            await apply_replicas(bk, definition)
        except Exception as exc:  # noqa: BLE001 - serve anyway; the outbox sweep retries
            log.error("search index unavailable at start", extra={"index": definition.name, "error": str(exc)[:300]})


# A request's objects die by reference counting, but 32 requests in flight hold enough at once to pass Python's
# default young-generation threshold (700) every few requests: a page of 20 incidents ran ~80 collections a
# second that found nothing, 4.7 % of the API's time (gc.callbacks timing under wrk, 32 connections). At 10,000
# none ran in the same load; cyclic garbage is still collected, after 10,000 net new objects.
GC_YOUNG_THRESHOLD = 10_000


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        bk = connect(settings)
        app.state.backends = bk
        # indexes built and defaults filled with a job's deadline: on a large collection they take longer
        # than a request's, and a start must not fail for it
        jobs_bk = connect(settings, jobs=True)
        try:
            await prepare(jobs_bk)
        finally:
            await jobs_bk.close()
        background = [asyncio.create_task(incident_embeddings.warm(bk))]
        if settings.outbox_sweep_interval > 0:
            background.append(asyncio.create_task(outbox.sweep_forever(bk, settings.outbox_sweep_interval)))
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await bk.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_ws_endpoint),  # graphql-transport-ws; authenticates itself (schema/ws.py)
        *graphiql.routes,
        Route("/openapi.json", openapi.endpoint(RESOURCES, settings)),
        *docs.routes,
        *dashboard.routes,
        *(route for resource in RESOURCES for route in resource.routes()),
    ]
    app = App(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware, timeout=settings.request_timeout_seconds),
                    Middleware(TokenAuthMiddleware, allow_ide=settings.development)],
        lifespan=lifespan,
    )
    app.router = IndexedRouter(routes, lifespan=lifespan)  # routes looked up by their leading segments
    app.state.permissions = permission_matrix()
    return app


class App(Starlette):
    """Starlette with only the app's own middleware around the router. Starlette puts two error layers around
    every request: its ServerErrorMiddleware outside, its ExceptionMiddleware inside, each wrapping `send`.
    RequestContextMiddleware is already the one boundary: it answers what the app raises with EXCEPTION_HANDLERS
    (the router's 404 as much as a service error) and masks the rest as a 500, and it puts those handlers where
    Starlette's function endpoints look for them (app/http/observability.py)."""

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def permission_matrix() -> list[Entry]:
    """Every declared rule: the REST operations', then the GraphQL root fields' (app/permissions.py)."""
    return [*permission_entries(RESOURCES), *graphql_permission_entries()]


def permission_page(*, markdown: bool) -> str:
    """The matrix as docs/permissions.md, or as the JSON `GET /api/auth/permissions/` answers (`ikl permissions`)."""
    entries = permission_matrix()
    return permissions.markdown(entries) if markdown else json.dumps(permissions.matrix_json(entries), indent=2)
