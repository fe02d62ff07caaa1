"""Request ids, access logs, Prometheus metrics and the last-resort error boundary, as one pure
ASGI middleware; and `/metrics`: this process's figures (HTTP, rate-limit refusals, Python) with the
service's shared ones read at scrape time — jobs per actor and the broker's queues (app/jobmetrics.py,
from Valkey), the outbox backlog and the index and embedding lag (from MongoDB)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from datetime import datetime, timezone
from typing import Any

import pymongo
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import jobmetrics, jobs
from app.activity import context as request_context
from app.backends import Backends
from app.errors import Internal, Unavailable
from app.http.responses import EXCEPTION_HANDLERS, RESPONSE_HEADERS, error_for, handler_for
from app.http.routing import IndexedRouter
from app.indexing import outbox
from app.logs import request_id_var
from indexers import registry

log = logging.getLogger("app.access")
metrics_log = logging.getLogger("app.metrics")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]+")  # a caller's request id is echoed only when it is this plain

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's: each process writes its figures there
REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


# Starlette's function endpoints (`request_response`) and websocket routes answer what they raise with the
# handlers they find under this scope key, which its ExceptionMiddleware sets; this middleware sets it instead
# (the app runs without that layer, app/main.py)
HANDLERS_KEY = "starlette.exception_handlers"
HANDLERS = (EXCEPTION_HANDLERS, {})

_FIGURES: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labels -> (counter, histogram): looked up once


def _figures(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of these labels (prometheus_client's `labels()` costs more than
    the count itself; bounded, as a client chooses its method)."""
    found = _FIGURES.get((method, route, status))
    if found is None:
        if len(_FIGURES) >= 10_000:
            _FIGURES.clear()
        found = _FIGURES[(method, route, status)] = (REQUESTS.labels(method, route, str(status)),
                                                      LATENCY.labels(method, route))
    return found


def route_label(scope: Scope) -> str:
    """The route a request is counted under: the route that served it, or — when it was answered before
    routing (a 401, a 429 of the sign-in limiter) — the route it was for; "unmatched" only when no route
    takes its path."""
    route = scope.get("route")
    if route is None and (app := scope.get("app")) is not None:
        router = getattr(app, "router", None)
        routes = router.candidates(scope) if isinstance(router, IndexedRouter) else getattr(app, "routes", ())
        route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    return getattr(route, "path", None) or ("/graphql" if scope["path"].startswith("/graphql") else "unmatched")


class RequestContextMiddleware:
    """Request id, metrics, access log, the error boundary, and a deadline for every request: past
    `timeout` seconds the work is cancelled and the caller gets a 503 REQUEST_TIMEOUT. The boundary is the app's
    only one (app/main.py `App`): what the app raises is answered by its handler in EXCEPTION_HANDLERS, anything
    else masked as a 500. Every response carries the request id and the headers the request's middleware put under
    RESPONSE_HEADERS (the rate limit's)."""

    def __init__(self, app: ASGIApp, *, timeout: float | None = None) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # one id for the connection: what its operations do is audited with it
            scope[HANDLERS_KEY] = HANDLERS
            captured = request_context.capture(scope, _request_id(scope))
            try:
                await self.app(scope, receive, send)
            finally:
                request_context.release(captured)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope[HANDLERS_KEY] = HANDLERS
        token = request_id_var.set(rid)
        captured = request_context.capture(scope, rid)  # address, user agent, request id: for the audit log
        status = 500
        started = False
        start = time.perf_counter()

        deadline: asyncio.Timeout | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode()),
                                      *scope.get(RESPONSE_HEADERS, ())]
                if deadline is not None and any(k == b"content-type" and v.startswith(b"text/event-stream")
                                                for k, v in message["headers"]):
                    deadline.reschedule(None)  # a live stream has its own limits (app/live.py)
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, receive, send_wrapper)
        except TimeoutError:
            log.warning("request deadline passed", extra={"path": scope["path"], "timeout": self.timeout})
            if started:
                raise
            timeout = Unavailable(f"The request did not complete within {self.timeout} s; try again",
                                  {"request_id": rid}, code="REQUEST_TIMEOUT")
            await error_for(scope["path"], timeout)(scope, receive, send_wrapper)
        except Exception as exc:  # the error boundary: answered by its handler, else masked and logged in full
            if started:
                log.exception("unhandled error", extra={"path": scope["path"]})
                raise
            await (await _answer(scope, exc, rid))(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            path = route_label(scope)
            requests, latency = _figures(scope["method"], path, status)
            requests.inc()
            latency.observe(elapsed)
            if path not in ("/healthz", "/metrics") and log.isEnabledFor(logging.INFO):
                log.info("request", extra={"method": scope["method"], "path": scope["path"], "status": status,
                                           "ms": round(elapsed * 1000, 2)})
            request_context.release(captured)
            request_id_var.reset(token)


async def _answer(scope: Scope, exc: Exception, rid: str) -> Response:
    """The response to what the app raised: its handler's (a router's 404, a service error, a backend outage),
    else a masked 500, logged in full with the request id."""
    if (handler := handler_for(exc)) is not None:
        try:
            return await handler(Request(scope), exc)
        except Exception:  # noqa: BLE001 - a handler that declines (not an outage) leaves it to the 500 below
            pass
    log.error("unhandled error", extra={"path": scope["path"]}, exc_info=exc)
    return error_for(scope["path"], Internal("Internal server error", {"request_id": rid}))


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is plain enough to echo, else a new one (128 random bits in hex, as
    `uuid4().hex` had them, at a fifth of its cost)."""
    incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    return incoming if 0 < len(incoming) <= 128 and _SAFE_ID.fullmatch(incoming) else os.urandom(16).hex()


# The oldest entry of each outbox kind: one key per kind read from the (index, created_at) index (a distinct
# scan; no document read, no sort), whatever the backlog; then each kind's backlog, counted on the index's
# keys and no further than BACKLOG_COUNT_LIMIT. tests/test_metrics.py checks both plans.
OUTBOX_OLDEST = [{"$sort": {"index": 1, "created_at": 1}},
                 {"$group": {"_id": "$index", "oldest": {"$first": "$created_at"}}}]
BACKLOG_COUNT_LIMIT = 100_000  # an outage's backlog: its age says more than its exact size past this


def backlog_count(kind: str) -> dict[str, Any]:
    """The `count` command for one outbox kind's backlog (a COUNT_SCAN, stopped at the limit)."""
    return {"count": "outbox", "query": {"index": kind}, "limit": BACKLOG_COUNT_LIMIT}


EMBEDDING_KINDS = tuple(k for k in ("embeddings", "article-embeddings") if k in outbox.JOB_KINDS)
SCRAPE_CACHE_SECONDS = 1.0  # the shared figures are read at most once a second per process, however often scraped
SOURCE_TIMEOUT = 1.0  # seconds each source (Valkey, MongoDB) may take before the scrape answers without it


async def metrics(request: Request) -> Response:
    """Prometheus text: the API's request figures, then the shared figures (cached for a second; a source that
    is down or slow is left out, with `ikl_metrics_source_up{source} 0` and a warning logged)."""
    return Response(_api_figures() + await _shared(request.app), media_type=CONTENT_TYPE_LATEST)


def _api_figures() -> bytes:
    """This process's metrics; with several API processes (`PROMETHEUS_MULTIPROC_DIR` set for all of them,
    as `dev.py run --api-processes N` does), every process's counters and histograms added up, whichever
    process answers the scrape."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


async def _shared(app: Any) -> bytes:
    state = app.state
    if getattr(state, "metrics_lock", None) is None:
        state.metrics_lock, state.metrics_cache = asyncio.Lock(), (float("-inf"), b"")
    async with state.metrics_lock:  # concurrent scrapes share one read
        at, body = state.metrics_cache
        if time.monotonic() - at >= SCRAPE_CACHE_SECONDS:
            body = await _read_shared(state.backends)
            state.metrics_cache = (time.monotonic(), body)
    return body


async def _read_shared(bk: Backends) -> bytes:
    async def from_broker() -> jobmetrics.JobFigures:
        return await jobmetrics.read(bk.redis, namespace=getattr(jobs.broker(bk.settings), "namespace", "dramatiq"))

    async def from_mongo() -> dict[str, tuple[int, datetime | None]]:
        with pymongo.timeout(SOURCE_TIMEOUT):
            found = await (await bk.mongo.outbox.aggregate(OUTBOX_OLDEST)).to_list(None)
            counts = await asyncio.gather(*(bk.mongo.command(backlog_count(e["_id"])) for e in found))
        return {e["_id"]: (int(c["n"]), e.get("oldest")) for e, c in zip(found, counts)}

    figures, entries = await asyncio.gather(_within("broker", from_broker()), _within("mongodb", from_mongo()))
    families = [*_job_families(figures), *_outbox_families(entries)]
    up = GaugeMetricFamily("ikl_metrics_source_up", "Whether this scrape could read the shared figures from the "
                           "source (broker: jobs and queues; mongodb: outbox and lag)", labels=["source"])
    up.add_metric(["broker"], float(figures is not None))
    up.add_metric(["mongodb"], float(entries is not None))
    families.append(up)
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Families(families))
    return generate_latest(snapshot)


async def _within(source: str, coro) -> Any:
    try:
        return await asyncio.wait_for(coro, SOURCE_TIMEOUT + 0.5)
    except Exception as exc:  # noqa: BLE001 - answer with what the other sources gave
        metrics_log.warning("metrics source unavailable",
                            extra={"source": source, "error": str(exc)[:200] or type(exc).__name__})
        return None


class _Families:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


def _job_families(f: jobmetrics.JobFigures | None) -> list:
    if f is None:
        return []
    actors = sorted({*jobs.QUEUES, *f.counts, *f.buckets, *f.running})
    runs = CounterMetricFamily("ikl_job_runs", "Job runs ended, by actor and outcome (succeeded, failed: raised; "
                               "skipped: refused before running), across all workers", labels=["actor", "outcome"])
    retries = CounterMetricFamily("ikl_job_retries", "Job runs that were retries of a failed run", labels=["actor"])
    running = GaugeMetricFamily("ikl_jobs_running", "Jobs running now, across all live workers", labels=["actor"])
    duration = HistogramMetricFamily("ikl_job_duration_seconds", "How long job runs took (succeeded or failed)",
                                     labels=["actor"])
    for actor in actors:
        counts = f.counts.get(actor, {})
        for outcome in ("succeeded", "failed", "skipped"):
            runs.add_metric([actor, outcome], counts.get(outcome, 0))
        retries.add_metric([actor], counts.get("retried", 0))
        running.add_metric([actor], f.running.get(actor, 0))
        per_bucket, total, cumulative = f.buckets.get(actor, {}), 0, []
        for bound in (*map(repr, jobmetrics.BUCKETS), "+Inf"):
            total += per_bucket.get(bound, 0)
            cumulative.append((bound, total))
        duration.add_metric([actor], cumulative, sum_value=f.sums.get(actor, 0.0))
    queued = GaugeMetricFamily("ikl_job_queue_messages", "Messages in the broker's queues: waiting for a worker, "
                               "delayed (retries, sent with a delay), dead-lettered", labels=["queue", "state"])
    for queue, states in sorted(f.queues.items()):
        for state, n in states.items():
            queued.add_metric([queue, state], n)
    workers = GaugeMetricFamily("ikl_job_workers", "Worker processes heartbeating")
    workers.add_metric([], f.workers)
    return [runs, retries, running, duration, queued, workers]


def _outbox_families(entries: dict[str, tuple[int, datetime | None]] | None) -> list:
    if entries is None:
        return []
    now = datetime.now(timezone.utc)
    found = {kind: (n, (now - oldest).total_seconds() if oldest else 0.0) for kind, (n, oldest) in entries.items()}
    indices = sorted(registry())
    backlog = GaugeMetricFamily("ikl_outbox_backlog", "Outbox entries pending: index syncs (type=index) and "
                                f"per-document jobs (type=job), counted up to {BACKLOG_COUNT_LIMIT}",
                                labels=["index", "type"])
    oldest = GaugeMetricFamily("ikl_outbox_oldest_age_seconds", "Age of the oldest pending outbox entry (since the "
                               "first write it holds), 0 when none", labels=["index", "type"])
    for name in sorted({*indices, *outbox.JOB_KINDS, *found}):
        n, age = found.get(name, (0, 0.0))
        kind = "job" if name in outbox.JOB_KINDS else "index"
        backlog.add_metric([name, kind], n)
        oldest.add_metric([name, kind], max(age, 0.0))
    index_lag = GaugeMetricFamily("ikl_index_lag_seconds", "How far each search index is behind MongoDB: the age "
                                  "of its oldest write not yet synced, 0 when in step", labels=["index"])
    for name in indices:
        index_lag.add_metric([name], max(found.get(name, (0, 0.0))[1], 0.0))
    embedding_lag = GaugeMetricFamily("ikl_embedding_lag_seconds", "How far embeddings are behind writes: the age "
                                      "of the oldest embedding job pending, 0 when none", labels=["kind"])
    for name in EMBEDDING_KINDS:
        embedding_lag.add_metric([name], max(found.get(name, (0, 0.0))[1], 0.0))
    return [backlog, oldest, index_lag, embedding_lag]
